package logs

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// endingStore is a store whose watches can be ended, as the store ends
// one that falls behind.
type endingStore struct {
	*store.Store
	mu      sync.Mutex
	watches []*store.Watcher
}

func (s *endingStore) ViewAndWatch(fn func(store.ReadTx) error, kinds ...store.Kind) (*store.Watcher, error) {
	w, err := s.Store.ViewAndWatch(fn, kinds...)
	if err == nil {
		s.mu.Lock()
		s.watches = append(s.watches, w)
		s.mu.Unlock()
	}
	return w, err
}

func (s *endingStore) endWatches() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.watches {
		w.Close()
	}
}

// liveSource gives each task's log one line, then follows it.
type liveSource struct{}

func (liveSource) TaskLogs(ctx context.Context, nodeID, taskID string, opts api.LogOptions, fn func([]api.LogRecord, bool) error) error {
	if err := fn([]api.LogRecord{{Time: time.Now(), Stream: "stdout", Line: "hello from " + taskID}}, true); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// A follow whose store watch ended (it fell behind) watches again: the
// tasks started meanwhile, and after, are followed too.
func TestFollowOutlivesItsWatch(t *testing.T) {
	st := &endingStore{Store: storetest.New(t, storetest.Options{Managers: 1}).Store(0)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addTask := func(id string, slot uint64) {
		t.Helper()
		if _, err := st.Update(ctx, func(tx store.Tx) error {
			return tx.Create(&api.Task{Meta: api.Meta{ID: id}, ServiceID: "svc1", ServiceName: "web", Slot: slot, NodeID: "n1", DesiredState: api.TaskRunning})
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Update(ctx, func(tx store.Tx) error {
		return tx.Create(&api.Service{Meta: api.Meta{ID: "svc1"}, Spec: api.ServiceSpec{Name: "web"}})
	}); err != nil {
		t.Fatal(err)
	}
	addTask("task1", 1)
	svc, err := New(Config{Store: st, Source: liveSource{}, Leader: func() bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan api.LogLine, 16)
	done := make(chan error, 1)
	go func() {
		done <- svc.Local(ctx, Query{Service: "web", Options: api.LogOptions{Follow: true}}, func(l api.LogLine) error { lines <- l; return nil })
	}()
	next := func(want string) {
		t.Helper()
		select {
		case l := <-lines:
			if l.Task != want {
				t.Fatalf("a line of %s (%q), want one of %s", l.Task, l.Line, want)
			}
		case err := <-done:
			t.Fatalf("the follow ended: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatalf("no line of %s", want)
		}
	}
	next("task1")
	st.endWatches()
	addTask("task2", 2)
	next("task2")
	addTask("task3", 3)
	next("task3")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("follow: %v", err)
	}
}
