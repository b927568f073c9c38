package containerd

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/api"
)

// A line half read when the executor closes is finished by the next
// one: kept in the partial file, not written as two records, and the
// records follow in order. The FIFO is a plain one here, held open as
// the shim holds it (a writer and a reader of its own).
func TestTaskLogPartialLineAcrossClose(t *testing.T) {
	dir := t.TempDir()
	newExec := func() *Executor {
		e := &Executor{cfg: Config{DataDir: dir, LogMaxFiles: 1, Clock: agent.RealClock{}}, log: slog.New(slog.DiscardHandler)}
		for _, d := range []string{"fifo", "logs"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		return e
	}
	e := newExec()
	l, err := e.openTaskLog("t1")
	if err != nil {
		t.Fatal(err)
	}
	// The shim's ends: its writer, and a reader that keeps the FIFO open
	// when the executor's is closed.
	w, err := os.OpenFile(e.fifoPath("t1", api.LogStdout), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	keep, err := os.OpenFile(e.fifoPath("t1", api.LogStdout), os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	werr, err := os.OpenFile(e.fifoPath("t1", api.LogStderr), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	e.startTaskLog(l)
	if _, err := w.WriteString("line 1\nline 2\npart"); err != nil { // one write: one read
		t.Fatal(err)
	}
	waitLog := func(e *Executor, want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(readAll(t, e), want) {
			if time.Now().After(deadline) {
				t.Fatalf("log %q, want %q in it", readAll(t, e), want)
			}
			<-time.After(10 * time.Millisecond)
		}
	}
	waitLog(e, "line 2\n")
	e.closeTaskLogs()
	if b, err := os.ReadFile(e.fifoPath("t1", api.LogStdout) + ".partial"); string(b) != "part" {
		t.Fatalf("partial file %q (%v), want %q", b, err, "part")
	}
	// Written while no executor reads.
	if _, err := w.WriteString("ial\nline 3\n"); err != nil {
		t.Fatal(err)
	}
	e = newExec()
	l, err = e.openTaskLog("t1")
	if err != nil {
		t.Fatal(err)
	}
	e.startTaskLog(l)
	if _, err := w.WriteString("line 4\nlast, no newline"); err != nil {
		t.Fatal(err)
	}
	// The task ends: the shim closes its ends.
	w.Close()
	werr.Close()
	keep.Close()
	select {
	case <-l.done:
	case <-time.After(10 * time.Second):
		t.Fatal("streams did not end with their writers")
	}
	e.stopTaskLog("t1", true)
	want := "line 1\nline 2\npartial\nline 3\nline 4\nlast, no newline\n"
	if diff := cmp.Diff(want, readAll(t, e)); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "fifo", "*")); len(left) > 0 {
		t.Errorf("left in the FIFO dir: %v", left)
	}
}

func readAll(t *testing.T, e *Executor) string {
	t.Helper()
	var b strings.Builder
	if err := e.ReadLogs(t.Context(), "t1", api.LogOptions{Tail: -1}, func(recs []api.LogRecord, _ bool) error {
		for _, r := range recs {
			if r.Time.IsZero() || r.Stream != api.LogStdout {
				t.Errorf("record %+v: want a time and stdout", r)
			}
			b.WriteString(r.Line + "\n")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
