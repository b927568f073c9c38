package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/agent/session"
	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
)

// fakeLogs serves n lines of every task, more than the credit window
// holds, then, when following, waits for the request to be cancelled.
type fakeLogs struct {
	n         int
	cancelled chan string
}

func (f *fakeLogs) ReadLogs(ctx context.Context, taskID string, opts api.LogOptions, fn func([]api.LogRecord, bool) error) error {
	if taskID == "broken" {
		return errors.New("logs: no such log")
	}
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range f.n {
		if err := fn([]api.LogRecord{{Time: t0.Add(time.Duration(i) * time.Second), Stream: api.LogStdout, Line: fmt.Sprintf("%s %d", taskID, i)}}, false); err != nil {
			return err
		}
	}
	if !opts.Follow {
		return nil
	}
	if err := fn(nil, true); err != nil {
		return err
	}
	<-ctx.Done()
	f.cancelled <- taskID
	return nil
}

// A logs request goes over a real session: the lines arrive in order,
// many more than the credit window; a worker's error comes back; a
// cancelled follow reaches the worker; a node without a session is
// ErrNoSession.
func TestTaskLogsOverSession(t *testing.T) {
	e := newEnv(t, envOptions{})
	fl := &fakeLogs{n: 10 * wire.LogsWindow, cancelled: make(chan string, 1)}
	c, err := session.New(session.Config{Managers: []string{e.addr}, TLS: clientTLS(t, e.root, e.cert("n1", api.RoleWorker)),
		Agent: &fakeAgent{}, Logs: fl, Clock: agentClock{newFakeClock()},
		Description: api.NodeDescription{Hostname: "n1.example", Platform: api.Platform{OS: "linux", Architecture: "amd64"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "n1 ready", func() bool { return e.nodeState("n1") == api.NodeReady })

	var lines []string
	read := func(task string, opts api.LogOptions) error {
		lines = nil
		rctx, rcancel := context.WithTimeout(context.Background(), waitLong)
		defer rcancel()
		return e.disp.TaskLogs(rctx, "n1", task, opts, func(recs []api.LogRecord, live bool) error {
			for _, r := range recs {
				lines = append(lines, r.Line)
			}
			return nil
		})
	}
	var err2 error
	waitFor(t, "a session that takes log requests", func() bool {
		err2 = read("t1", api.LogOptions{Tail: -1})
		return !errors.Is(err2, dispatcher.ErrNoSession)
	})
	if err2 != nil {
		t.Fatal(err2)
	}
	if len(lines) != fl.n || lines[0] != "t1 0" || lines[fl.n-1] != fmt.Sprintf("t1 %d", fl.n-1) {
		t.Fatalf("read %d lines %q…, want %d in order", len(lines), lines[:min(3, len(lines))], fl.n)
	}
	for i, l := range lines {
		if l != fmt.Sprintf("t1 %d", i) {
			t.Fatalf("line %d = %q", i, l)
		}
	}
	var rerr *dispatcher.RemoteLogError
	if err := read("broken", api.LogOptions{Tail: -1}); !errors.As(err, &rerr) || rerr.Msg != "logs: no such log" {
		t.Errorf("broken task: %v, want the worker's error", err)
	}

	// Follow: the reader stops after the backlog; the worker sees the cancel.
	fctx, fcancel := context.WithCancel(context.Background())
	errStop := errors.New("stop")
	got := 0
	err = e.disp.TaskLogs(fctx, "n1", "t2", api.LogOptions{Tail: -1, Follow: true}, func(recs []api.LogRecord, live bool) error {
		got += len(recs)
		if live {
			return errStop
		}
		return nil
	})
	fcancel()
	if !errors.Is(err, errStop) || got != fl.n {
		t.Errorf("follow: %v after %d lines, want stop after %d", err, got, fl.n)
	}
	select {
	case id := <-fl.cancelled:
		if id != "t2" {
			t.Errorf("cancelled %s", id)
		}
	case <-time.After(waitLong):
		t.Fatal("the worker's follow was never cancelled")
	}

	if err := e.disp.TaskLogs(context.Background(), "n9", "t1", api.LogOptions{}, func([]api.LogRecord, bool) error { return nil }); !errors.Is(err, dispatcher.ErrNoSession) {
		t.Errorf("node without a session: %v, want ErrNoSession", err)
	}
}
