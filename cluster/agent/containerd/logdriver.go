package containerd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// LogDriverArg is the first argument the shim gives the log driver
// (Config.LogDriver); the second is the log file.
const LogDriverArg = "log-driver"

// RunLogDriver is a task's log driver, run by containerd's runc shim as a
// logging binary: the task's stdout and stderr are file descriptors 3 and
// 4, and closing 5 tells the shim the driver is ready. It appends each
// line to file as a record "TIME STREAM F|P LINE" until both streams end.
// It outlives agent restarts with the shim. cmd/gitorc calls it when run
// as "gitorc log-driver FILE".
func RunLogDriver(file string) error {
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
	w := &recordWriter{w: f, now: time.Now}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, in := range []struct {
		r      io.Reader
		stream string
	}{{stdout, api.LogStdout}, {stderr, api.LogStderr}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.copy(in.r, in.stream)
		}()
	}
	wg.Wait()
	return errors.Join(errs[0], errs[1], f.Close())
}

// recordWriter writes records of both streams, each in one write.
type recordWriter struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
}

func (rw *recordWriter) copy(r io.Reader, stream string) error {
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, more, err := br.ReadLine()
		if len(line) > 0 || err == nil {
			tag := "F"
			if more {
				tag = "P"
			}
			rec := make([]byte, 0, len(line)+48)
			rec = rw.now().UTC().AppendFormat(rec, time.RFC3339Nano)
			rec = append(rec, ' ')
			rec = append(rec, stream...)
			rec = append(rec, ' ')
			rec = append(rec, tag...)
			rec = append(rec, ' ')
			rec = append(rec, line...)
			rec = append(rec, '\n')
			rw.mu.Lock()
			_, werr := rw.w.Write(rec)
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
