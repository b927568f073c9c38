package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// A task's log is its rotated files, oldest first (log.N … log.1), then
// the live file. Each line is a record "TIME STREAM F|P LINE" (RFC 3339
// time, as the CRI log format; P marks a piece of a line longer than
// maxLogLine; taskio.go writes them); a line that does not parse as one
// (a log written raw by an older version) is stdout, without a time.

// Bounds of reading.
const (
	logBatch    = 256 // records handed over at a time
	logReadSize = 32 << 10
	logPoll     = 200 * time.Millisecond
)

var _ interface {
	ReadLogs(ctx context.Context, taskID string, opts api.LogOptions, fn func([]api.LogRecord, bool) error) error
} = (*Executor)(nil)

// ReadLogs reads a task's log, rotated files included, and calls fn with
// its records in the order written, in batches: the last opts.Tail of
// them (all when negative) written after opts.Since; then, with
// opts.Follow, once with live set and no records, then with what the
// task writes next, until ctx ends. A log that does not exist yet is
// empty, and followed from when it appears. Memory is bounded by a batch
// and the tail, whatever the log's size.
func (e *Executor) ReadLogs(ctx context.Context, taskID string, opts api.LogOptions, fn func(recs []api.LogRecord, live bool) error) error {
	if err := checkID(taskID); err != nil {
		return err
	}
	e.awaitExitedOutput(ctx, taskID)
	p := e.logPath(taskID)
	keep := func(r api.LogRecord) bool { return opts.Since.IsZero() || r.Time.After(opts.Since) }
	var (
		batch []api.LogRecord
		ring  = tailRing{max: opts.Tail} // the tail so far
	)
	flush := func(live bool) error {
		if len(batch) == 0 {
			return nil
		}
		b := batch
		batch = nil
		return fn(b, live)
	}
	backlog := func(r api.LogRecord) error {
		switch {
		case !keep(r), opts.Tail == 0:
		case opts.Tail > 0:
			ring.add(r)
		default:
			batch = append(batch, r)
			if len(batch) >= logBatch {
				return flush(false)
			}
		}
		return nil
	}
	for i := e.cfg.LogMaxFiles; i >= 1; i-- {
		f, err := os.Open(fmt.Sprintf("%s.%d", p, i))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("logs: %w", err)
		}
		err = (&lineReader{f: f}).each(backlog, true)
		f.Close()
		if err != nil {
			return err
		}
	}
	var live *lineReader
	if f, err := os.Open(p); err == nil {
		defer f.Close()
		live = &lineReader{f: f, rotated: p + ".1"}
		if err := live.each(backlog, false); err != nil {
			return err
		}
		// Rotated while read: the rest of what was read is in .1.
		if err := live.rewindIfTruncated(backlog); err != nil {
			return err
		}
		if err := live.each(backlog, !opts.Follow); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("logs: %w", err)
	}
	for r := range ring.all() {
		batch = append(batch, r)
		if len(batch) >= logBatch {
			if err := flush(false); err != nil {
				return err
			}
		}
	}
	if err := flush(false); err != nil || !opts.Follow {
		return err
	}
	if err := fn(nil, true); err != nil {
		return err
	}
	add := func(r api.LogRecord) error {
		if keep(r) {
			batch = append(batch, r)
			if len(batch) >= logBatch {
				return flush(true)
			}
		}
		return nil
	}
	for {
		if live == nil {
			if f, err := os.Open(p); err == nil {
				defer f.Close()
				live = &lineReader{f: f, rotated: p + ".1"}
			}
		}
		if live != nil {
			if err := live.each(add, false); err != nil {
				return err
			}
			if err := flush(true); err != nil {
				return err
			}
			if err := live.rewindIfTruncated(add); err != nil {
				return err
			}
		}
		t := e.cfg.Clock.NewTimer(logPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
	}
}

// tailRing keeps the last max records added.
type tailRing struct {
	max   int
	buf   []api.LogRecord
	start int
}

func (t *tailRing) add(r api.LogRecord) {
	if len(t.buf) < t.max {
		t.buf = append(t.buf, r)
		return
	}
	t.buf[t.start] = r
	t.start = (t.start + 1) % t.max
}

// all yields the records, oldest first.
func (t *tailRing) all() func(func(api.LogRecord) bool) {
	return func(yield func(api.LogRecord) bool) {
		for i := range t.buf {
			if !yield(t.buf[(t.start+i)%len(t.buf)]) {
				return
			}
		}
	}
}

// lineReader reads records from a log file, keeping a partial last line
// for the next read.
type lineReader struct {
	f      *os.File
	offset int64
	carry  []byte
	buf    []byte
	// rotated is where rotation copies the file before it truncates it
	// (live file only).
	rotated string
}

// each calls fn with every complete line from the current position to the
// end of the file; final hands over a partial last line too.
func (l *lineReader) each(fn func(api.LogRecord) error, final bool) error {
	if l.buf == nil {
		l.buf = make([]byte, logReadSize)
	}
	for {
		n, err := l.f.Read(l.buf)
		l.offset += int64(n)
		data := l.buf[:n]
		for len(data) > 0 {
			i := indexNL(data)
			if i < 0 {
				l.carry = append(l.carry, data...)
				if len(l.carry) > maxLogLine { // a runaway line: cut it
					if err := fn(parseRecord(l.carry)); err != nil {
						return err
					}
					l.carry = l.carry[:0]
				}
				break
			}
			line := data[:i]
			if len(l.carry) > 0 {
				line = append(l.carry, line...)
			}
			if err := fn(parseRecord(line)); err != nil {
				return err
			}
			l.carry = l.carry[:0]
			data = data[i+1:]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("logs: %w", err)
		}
	}
	if final && len(l.carry) > 0 {
		err := fn(parseRecord(l.carry))
		l.carry = l.carry[:0]
		return err
	}
	return nil
}

// rewindIfTruncated starts over when rotation truncated the file. What
// was written after the point read and before the truncation is in the
// copy rotation made first (rotated: copy, then truncate): fn gets it
// from there, from that point on, before the file is read again.
func (l *lineReader) rewindIfTruncated(fn func(api.LogRecord) error) error {
	fi, err := l.f.Stat()
	if err != nil || fi.Size() >= l.offset {
		return nil
	}
	if l.rotated != "" {
		if f, err := os.Open(l.rotated); err == nil {
			rest := &lineReader{f: f, carry: l.carry, buf: l.buf}
			_, err = f.Seek(l.offset, io.SeekStart)
			if err == nil {
				err = rest.each(fn, true)
			}
			f.Close()
			if err != nil {
				return err
			}
		}
	}
	if _, err := l.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	l.offset, l.carry = 0, l.carry[:0]
	return nil
}

func indexNL(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i
		}
	}
	return -1
}

// parseRecord parses one line of a log file.
func parseRecord(b []byte) api.LogRecord {
	if len(b) > maxLogLine+64 {
		b = b[:maxLogLine+64]
	}
	s := string(b)
	if ts, rest, ok := strings.Cut(s, " "); ok {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			if stream, rest, ok := strings.Cut(rest, " "); ok && (stream == api.LogStdout || stream == api.LogStderr) {
				if tag, line, ok := strings.Cut(rest, " "); ok && (tag == "F" || tag == "P") {
					return api.LogRecord{Time: t, Stream: stream, Line: cut(line)}
				}
			}
		}
	}
	return api.LogRecord{Stream: api.LogStdout, Line: cut(s)}
}

func cut(s string) string {
	if len(s) > maxLogLine {
		return s[:maxLogLine]
	}
	return s
}
