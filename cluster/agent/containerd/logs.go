package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// The executor appends the task's stdout and stderr to its log file
// (taskio.go). Rotation is copy-then-truncate: the O_APPEND writes
// continue at the new end of the file.

func (e *Executor) logPath(taskID string) string {
	return filepath.Join(e.cfg.DataDir, "logs", taskID+".log")
}

// RemoveLog deletes a task's log and its rotated files.
func (e *Executor) RemoveLog(taskID string) error {
	if err := checkID(taskID); err != nil {
		return err
	}
	p := e.logPath(taskID)
	for i := 0; i <= e.cfg.LogMaxFiles; i++ {
		name := p
		if i > 0 {
			name = fmt.Sprintf("%s.%d", p, i)
		}
		if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove log: %w", err)
		}
	}
	return nil
}

// rotateLogs rotates logs that outgrew LogMaxSize every few seconds until
// ctx ends.
func (e *Executor) rotateLogs(ctx context.Context) {
	for {
		t := e.cfg.Clock.NewTimer(5 * time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		paths, _ := filepath.Glob(filepath.Join(e.cfg.DataDir, "logs", "*.log"))
		for _, p := range paths {
			if err := rotate(p, e.cfg.LogMaxSize, e.cfg.LogMaxFiles); err != nil {
				e.log.Warn("rotate log", "path", p, logKeyErr, err)
			}
		}
	}
}

// rotate shifts p.N-1 → p.N …, copies p to p.1 and truncates p, when p is
// larger than maxSize.
func rotate(p string, maxSize int64, maxFiles int) error {
	fi, err := os.Stat(p)
	if err != nil || fi.Size() <= maxSize {
		return nil
	}
	if maxFiles > 0 {
		for i := maxFiles - 1; i >= 1; i-- {
			from, to := fmt.Sprintf("%s.%d", p, i), fmt.Sprintf("%s.%d", p, i+1)
			if err := os.Rename(from, to); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		if err := copyFile(p, p+".1"); err != nil {
			return err
		}
	}
	return os.Truncate(p, 0)
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// Logs writes a task's output to w, a line at a time without time or
// stream: its last tail lines (all when tail is negative), then, with
// follow, what it writes next until ctx ends.
func (e *Executor) Logs(ctx context.Context, taskID string, tail int, follow bool, w io.Writer) error {
	return e.ReadLogs(ctx, taskID, api.LogOptions{Tail: tail, Follow: follow}, func(recs []api.LogRecord, _ bool) error {
		var b bytes.Buffer
		for _, r := range recs {
			b.WriteString(r.Line)
			b.WriteByte('\n')
		}
		_, err := w.Write(b.Bytes())
		return err
	})
}
