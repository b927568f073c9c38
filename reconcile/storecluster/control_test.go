package storecluster_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/gitorc/gitorc/reconcile/storecluster"
)

// Requests written on any manager, at the same time, all land in the one
// sync state (followers forward; conflicts are retried), and the leader
// sees them through its watch.
func TestUpdateSyncFromEveryManager(t *testing.T) {
	ctx := context.Background()
	sc := storetest.New(t, storetest.Options{Managers: 3})
	leader, err := sc.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes, err := storecluster.New(sc.Store(leader)).WatchSync(lctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for m := range 3 {
		cl := storecluster.New(sc.Store(m))
		for i := range 10 {
			wg.Go(func() {
				_, err := cl.UpdateSync(ctx, func(s *api.SyncState) error {
					s.Requests = append(s.Requests, api.SyncRequest{ID: fmt.Sprintf("m%d-%d", m, i), Trigger: api.TriggerManual})
					return nil
				})
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-changes:
	case <-time.After(10 * time.Second):
		t.Fatal("the leader's watch saw no change")
	}
	cl := storecluster.New(sc.Store(leader))
	if err := storetest.WaitFor(func() bool { s, _ := cl.Sync(ctx); return len(s.Requests) == 30 }, 10*time.Second); err != nil {
		s, _ := cl.Sync(ctx)
		t.Fatalf("%d requests in the state, want 30", len(s.Requests))
	}
}

func TestUpdateSyncAndCommit(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t, storetest.Options{Managers: 1}).Store(0)
	cl := storecluster.New(st)

	// No state yet: UpdateSync creates it.
	if _, err := cl.UpdateSync(ctx, func(s *api.SyncState) error {
		s.Source = api.SourceSpec{URL: "/repo", Ref: "main"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	base, err := cl.Sync(ctx)
	if err != nil || base.Source.URL != "/repo" {
		t.Fatalf("state %+v, %v", base, err)
	}

	// ErrUnchanged writes nothing; another error aborts the write.
	got, err := cl.UpdateSync(ctx, func(s *api.SyncState) error { s.Suspended = true; return reconcile.ErrUnchanged })
	if err != nil || got.Version != base.Version || got.Suspended {
		t.Fatalf("ErrUnchanged: %+v, %v", got, err)
	}
	boom := errors.New("boom")
	if _, err := cl.UpdateSync(ctx, func(s *api.SyncState) error { s.Suspended = true; return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error: %v", err)
	}
	if s, _ := cl.Sync(ctx); s.Version != base.Version {
		t.Fatal("an aborted update wrote")
	}

	// A controller that read the state before an operator suspended it
	// and a request came in does not undo them with its commit.
	stale := base
	if _, err := cl.UpdateSync(ctx, func(s *api.SyncState) error {
		s.Suspended = true
		reconcile.QueueRequest(s, api.SyncRequest{ID: "r1", Trigger: api.TriggerManual})
		reconcile.QueueRequest(s, api.SyncRequest{ID: "r2", Trigger: api.TriggerWebhook})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stale.Phase, stale.Revision = api.SyncProgressing, "abc"
	rec := api.SyncRecord{Meta: api.Meta{ID: "rec1"}, Revision: "abc", Result: api.SyncProgressing}
	if err := cl.Commit(ctx, reconcile.Commit{State: stale, Records: []api.SyncRecord{rec}}); err != nil {
		t.Fatal(err)
	}
	s, _ := cl.Sync(ctx)
	if !s.Suspended || len(s.Requests) != 2 || s.Source.URL != "/repo" || s.Phase != api.SyncProgressing || s.Revision != "abc" {
		t.Fatalf("after a stale commit: %+v", s)
	}

	// Requests that gain their record (both served by one sync) mark the
	// record with the first.
	if _, err := cl.UpdateSync(ctx, func(s *api.SyncState) error {
		for i := range s.Requests {
			s.Requests[i].StartedAt, s.Requests[i].FinishedAt = time.Now(), time.Now()
			s.Requests[i].Record = "rec1"
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h, err := cl.History(ctx)
	if err != nil || len(h) != 1 || h[0].Request != "r1" || h[0].Revision != "abc" {
		t.Fatalf("history %+v, %v", h, err)
	}
}
