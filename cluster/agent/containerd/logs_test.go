package containerd_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/agent/containerd"
	"github.com/gitorc/gitorc/cluster/api"
)

// syncBuffer is a strings.Builder safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogsTailFollow_Root(t *testing.T) {
	requireRoot(t)
	// Prints 1..5 on stdout; then, once the test has seen them, "oops" on
	// stderr (stdout and stderr are separate pipes: their relative order is
	// only defined when the writer waits like this); then "after".
	task := newTask(t, env.image, withCommand("sh", "-c",
		"seq 1 5; while [ ! -f /tmp/err ]; do sleep 0.05; done; echo oops >&2; "+
			"while [ ! -f /tmp/go ]; do sleep 0.05; done; echo after; sleep 3600"))
	runTask(t, task, agent.Files{})
	c, err := env.exec.Client().LoadContainer(namespaced(context.Background()), task.ID)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := c.Task(namespaced(context.Background()), nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() (bool, string) {
		l := logs(t, env.exec, task.ID)
		return strings.Contains(l, "5\n"), "log: " + l
	})
	if err := writeEmpty(rootfsPath(tk.Pid(), "/tmp/err")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() (bool, string) {
		l := logs(t, env.exec, task.ID)
		return strings.Contains(l, "oops"), "log: " + l
	})
	var recs []api.LogRecord
	if err := env.exec.ReadLogs(context.Background(), task.ID, api.LogOptions{Tail: 2}, func(rs []api.LogRecord, _ bool) error {
		recs = append(recs, rs...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Stream != api.LogStdout || recs[1].Stream != api.LogStderr || recs[1].Line != "oops" ||
		recs[0].Time.IsZero() || recs[1].Time.Before(recs[0].Time) {
		t.Errorf("records %+v, want 5 on stdout then oops on stderr, timed in order", recs)
	}
	var tail strings.Builder
	if err := env.exec.Logs(context.Background(), task.ID, 2, false, &tail); err != nil {
		t.Fatal(err)
	}
	if tail.String() != "5\noops\n" {
		t.Errorf("tail 2 = %q, want stdout and stderr interleaved: %q", tail.String(), "5\noops\n")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var follow syncBuffer
	done := make(chan error, 1)
	go func() { done <- env.exec.Logs(ctx, task.ID, 1, true, &follow) }()
	// Let the process go on: create /tmp/go in its root filesystem.
	touch := rootfsPath(tk.Pid(), "/tmp/go")
	if err := writeEmpty(touch); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() (bool, string) {
		return strings.Contains(follow.String(), "after"), "followed: " + follow.String()
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("follow: %v", err)
	}
	if got := follow.String(); !strings.HasPrefix(got, "oops\n") || !strings.HasSuffix(got, "after\n") {
		t.Errorf("followed %q, want the last line then the new one", got)
	}
}

// An executor that is closed while a task writes, and a new one on the
// same containerd and data dir, lose nothing of the task's output and
// write nothing twice: what the task wrote while no executor read waits
// in the FIFO (the test sees it there), and the new executor reads on
// from the FIFO paths containerd keeps in the task's IO.
func TestLogsAcrossExecutorRestart_Root(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	newExec := func() *containerd.Executor {
		e, err := containerd.New(context.Background(), containerd.Config{
			DataDir: dir, Address: env.exec.Address(), InsecureRegistries: []string{env.reg.Addr}, Logger: testLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := newExec()
	// Writes numbered lines until /tmp/down exists (bounded), then one
	// more and "end N".
	task := newTask(t, env.image, withCommand("sh", "-c",
		`i=0; while [ ! -f /tmp/down ] && [ $i -lt 1000000 ]; do echo "line $i"; i=$((i+1)); done; `+
			`echo "line $i"; echo "end $((i+1))"; sleep 3600`))
	t.Cleanup(func() {
		if _, err := e.Remove(context.Background(), task.ID); err != nil {
			t.Errorf("remove: %v", err)
		}
		for _, s := range []string{"stdout", "stderr"} {
			if _, err := os.Stat(filepath.Join(dir, "fifo", task.ID+"."+s)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s FIFO left after remove: %v", s, err)
			}
		}
		_ = e.Close()
	})
	ctx := context.Background()
	if err := e.Prepare(ctx, task, agent.Files{}); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx, task.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() (bool, string) {
		l := logs(t, e, task.ID)
		return strings.Count(l, "\n") >= 2000, fmt.Sprintf("%d lines logged", strings.Count(l, "\n"))
	})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	// The task writes on into the FIFO, which nobody reads now.
	fifo := filepath.Join(dir, "fifo", task.ID+".stdout")
	waitFor(t, 30*time.Second, func() (bool, string) {
		n, err := pending(fifo)
		return err == nil && n >= 16<<10, fmt.Sprintf("%d bytes waiting in the FIFO (%v)", n, err)
	})
	e = newExec()
	c, err := e.Client().LoadContainer(namespaced(ctx), task.ID)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := c.Task(namespaced(ctx), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeEmpty(rootfsPath(tk.Pid(), "/tmp/down")); err != nil {
		t.Fatal(err)
	}
	var recs []api.LogRecord
	waitFor(t, 60*time.Second, func() (bool, string) {
		recs = recs[:0]
		if err := e.ReadLogs(ctx, task.ID, api.LogOptions{Tail: -1}, func(rs []api.LogRecord, _ bool) error {
			recs = append(recs, rs...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return len(recs) > 0 && strings.HasPrefix(recs[len(recs)-1].Line, "end "),
			fmt.Sprintf("%d records, no end yet", len(recs))
	})
	t.Logf("%d records", len(recs))
	last := recs[len(recs)-1]
	if want := fmt.Sprintf("end %d", len(recs)-1); last.Line != want {
		t.Errorf("last record %q, want %q (one record per line written)", last.Line, want)
	}
	for i, r := range recs[:len(recs)-1] {
		if want := fmt.Sprintf("line %d", i); r.Line != want || r.Stream != api.LogStdout {
			t.Fatalf("record %d = %s %q, want stdout %q (records %d…: %+v)", i, r.Stream, r.Line, want, i, recs[i:min(i+3, len(recs))])
		}
		if r.Time.After(recs[i+1].Time) {
			t.Fatalf("record %d timed %s after the next one's %s", i, r.Time, recs[i+1].Time)
		}
	}
}

// pending is how many bytes wait in the FIFO at p, read without taking
// them (opening it for reading adds a reader; FIONREAD reads nothing).
func pending(p string) (int, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return unix.IoctlGetInt(fd, unix.TIOCINQ) // FIONREAD
}
