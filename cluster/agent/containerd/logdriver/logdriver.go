package logdriver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Arg is the first argument the shim gives the driver (the key of
// containerd's binary log URI); the second is the log file.
const Arg = "log-driver"

// The streams a record names (api.LogStdout, api.LogStderr).
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// MaxLine is the longest piece of a line a record holds.
const MaxLine = 16 << 10

// Run is the driver: the task's stdout and stderr are file descriptors 3
// and 4, and closing 5 tells the shim it is ready. It appends records to
// file until both streams end. It outlives agent restarts with the shim.
func Run(file string) error {
	stdout, stderr, ready := os.NewFile(3, "stdout"), os.NewFile(4, "stderr"), os.NewFile(5, "ready")
	if stdout == nil || stderr == nil {
		return errors.New("log driver: no stdout and stderr descriptors (run by the shim only)")
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("log driver: %w", err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if ready != nil {
		ready.Close()
	}
	if err != nil {
		return fmt.Errorf("log driver: %w", err)
	}
	return Copy(f, stdout, stderr, time.Now)
}

// Copy writes the records of both streams to w until both end, then
// closes w if it is a file.
func Copy(w io.Writer, stdout, stderr io.Reader, now func() time.Time) error {
	rw := &Writer{W: w, Now: now}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, in := range []struct {
		r      io.Reader
		stream string
	}{{stdout, Stdout}, {stderr, Stderr}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = rw.Copy(in.r, in.stream)
		}()
	}
	wg.Wait()
	var cerr error
	if c, ok := w.(io.Closer); ok {
		cerr = c.Close()
	}
	return errors.Join(errs[0], errs[1], cerr)
}

// Writer writes records of several streams, each in one write.
type Writer struct {
	mu  sync.Mutex
	W   io.Writer
	Now func() time.Time
}

// Copy writes a record for each line of r, named stream, until r ends.
func (rw *Writer) Copy(r io.Reader, stream string) error {
	br := bufio.NewReaderSize(r, MaxLine)
	for {
		line, more, err := br.ReadLine()
		if len(line) > 0 || err == nil {
			tag := "F"
			if more {
				tag = "P"
			}
			rec := make([]byte, 0, len(line)+48)
			rec = rw.Now().UTC().AppendFormat(rec, time.RFC3339Nano)
			rec = append(rec, ' ')
			rec = append(rec, stream...)
			rec = append(rec, ' ')
			rec = append(rec, tag...)
			rec = append(rec, ' ')
			rec = append(rec, line...)
			rec = append(rec, '\n')
			rw.mu.Lock()
			_, werr := rw.W.Write(rec)
			rw.mu.Unlock()
			if werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
