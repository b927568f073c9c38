package containerd_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/agent"
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
