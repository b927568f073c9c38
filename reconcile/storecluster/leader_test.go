package storecluster_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/gitorc/gitorc/reconcile/gitsource"
	"github.com/gitorc/gitorc/reconcile/storecluster"
	"github.com/google/go-cmp/cmp"
)

// orchestrateStopFirst stands for the orchestrator and the agents with
// stop-first updates: a service whose image is bad has lost its tasks and
// is rolled back; every other service gets its replicas running its
// current spec.
func orchestrateStopFirst(t *testing.T, st *store.Store, bad string) {
	t.Helper()
	_, err := st.Update(context.Background(), func(tx store.Tx) error {
		svcs, err := store.Find[api.Service](tx, store.All())
		if err != nil {
			return err
		}
		for _, svc := range svcs {
			tasks, err := store.Find[api.Task](tx, store.ByService(svc.ID))
			if err != nil {
				return err
			}
			for _, old := range tasks {
				if err := tx.Delete(store.KindTask, old.ID, 0); err != nil {
					return err
				}
			}
			if svc.Spec.Task.Container.Image == bad {
				if svc.Update == nil {
					svc.Update = &api.UpdateStatus{State: api.UpdatePaused, Message: "task exited (1)"}
					if err := tx.Update(svc); err != nil {
						return err
					}
				}
				continue
			}
			for i := range svc.Spec.Replicas {
				task := &api.Task{ServiceID: svc.ID, ServiceName: svc.Spec.Name, Slot: i + 1, SpecVersion: svc.Version,
					Spec: svc.Spec.Task, DesiredState: api.TaskRunning, Status: api.TaskStatus{State: api.TaskRunning}}
				if err := tx.Create(task); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("orchestrate: %v", err)
	}
}

// A leader killed in the middle of a sync: the controller of the next
// leader finishes the rollout the first one left in flight — or reverts
// it, or finishes its revert — completing the same history records, with
// none duplicated and none left Progressing, on a real 3-manager store.
func TestLeaderChangeMidSync(t *testing.T) {
	tests := []struct {
		name string
		// image of the second commit; "app:bad" never runs.
		image string
		// killWhen says, from the in-flight apply, when the leader dies.
		killWhen func(f *api.SyncInFlight) bool
		// history, as "revision trigger result" with good/next for the
		// two commits.
		want      []string
		wantImage string
		wantPhase api.SyncPhase
	}{
		{
			name: "rollout finished by the next leader", image: "app:2",
			killWhen:  func(f *api.SyncInFlight) bool { return f.Record.Trigger == api.TriggerWebhook },
			want:      []string{"good webhook synced", "next webhook synced"},
			wantImage: "app:2", wantPhase: api.SyncSynced,
		},
		{
			name: "failed rollout reverted by the next leader", image: "app:bad",
			killWhen:  func(f *api.SyncInFlight) bool { return f.Record.Trigger == api.TriggerWebhook },
			want:      []string{"good webhook synced", "next webhook degraded", "good revert synced"},
			wantImage: "app:1", wantPhase: api.SyncDegraded,
		},
		{
			name: "revert finished by the next leader", image: "app:bad",
			killWhen:  func(f *api.SyncInFlight) bool { return f.Record.Trigger == api.TriggerRevert },
			want:      []string{"good webhook synced", "next webhook degraded", "good revert synced"},
			wantImage: "app:1", wantPhase: api.SyncDegraded,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc := storetest.New(t, storetest.Options{Managers: 3})
			r := newRepo(t)
			clk := &clock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
			controller := func(st *store.Store) (*reconcile.Controller, *storecluster.Cluster) {
				t.Helper()
				src, err := gitsource.New(gitsource.Config{URL: r.dir, Ref: "main", DataDir: t.TempDir()})
				if err != nil {
					t.Fatal(err)
				}
				cl := storecluster.New(st)
				ctl, err := reconcile.NewController(reconcile.ControllerConfig{Source: src, Cluster: cl, Clock: clk,
					Workdir: t.TempDir(), ProgressDeadline: time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				return ctl, cl
			}

			first, err := sc.WaitLeader(30 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			firstStore := sc.Store(first)
			ctl, cl := controller(firstStore)
			good := r.commit(map[string]string{"web/compose.yaml": stack("app:1", 2)})
			clk.onWait = func() { orchestrateStopFirst(t, firstStore, "app:bad") }
			if rec, err := ctl.Sync(context.Background(), api.TriggerWebhook); err != nil || rec.Result != api.SyncSynced {
				t.Fatalf("first commit: %+v %v", rec, err)
			}

			// The second commit's sync; the leader dies in its middle.
			next := r.commit(map[string]string{"web/compose.yaml": stack(tc.image, 2)})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var (
				once     sync.Once
				inflight *api.SyncInFlight
			)
			clk.onWait = func() {
				s, err := cl.Sync(context.Background())
				if err == nil && s.InFlight != nil && tc.killWhen(s.InFlight) {
					once.Do(func() {
						inflight = s.InFlight
						cancel()
						sc.Kill(first)
					})
				}
				if inflight == nil {
					orchestrateStopFirst(t, firstStore, "app:bad")
				}
			}
			if _, err := ctl.Sync(ctx, api.TriggerWebhook); err == nil {
				t.Fatal("the sync of the killed leader ended without an error")
			}
			if inflight == nil {
				t.Fatal("the leader was never killed")
			}

			// The next leader's controller takes over at its first sync.
			nl, err := sc.WaitLeader(10*time.Second, first)
			if err != nil {
				t.Fatal(err)
			}
			nextStore := sc.Store(nl)
			ctl2, cl2 := controller(nextStore)
			clk.onWait = func() { orchestrateStopFirst(t, nextStore, "app:bad") }
			rec, err := ctl2.Sync(context.Background(), api.TriggerPoll)
			if err != nil {
				t.Fatal(err)
			}
			if rec.ID != inflight.Record.ID {
				t.Errorf("the new leader's sync returned %+v, want the record in flight %s", rec, inflight.Record.ID)
			}

			h := history(t, cl2)
			name := map[string]string{good: "good", next: "next"}
			var got []string
			ids := map[string]bool{}
			for _, rec := range h {
				got = append(got, fmt.Sprintf("%s %s %s", name[rec.Revision], rec.Trigger, rec.Result))
				if ids[rec.ID] {
					t.Errorf("record %s twice", rec.ID)
				}
				ids[rec.ID] = true
				if rec.FinishedAt.IsZero() {
					t.Errorf("record left unfinished: %+v", rec)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("history (-want +got):\n%s", diff)
			}
			st, err := cl2.Sync(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.InFlight != nil || st.Phase != tc.wantPhase {
				t.Errorf("state %+v", st)
			}
			if tc.wantPhase == api.SyncDegraded && (!slices.Contains(st.FailedRevisions, next) || st.Revision != good) {
				t.Errorf("failed revision not marked, or not back on the good one: %+v", st)
			}
			if svc := service(t, nextStore, "web_app"); svc == nil || svc.Spec.Task.Container.Image != tc.wantImage {
				t.Errorf("web_app %+v, want image %s", svc, tc.wantImage)
			}
			// The next sync has nothing left to finish.
			if rec, err := ctl2.Sync(context.Background(), api.TriggerPoll); err != nil || rec.ID != "" {
				t.Errorf("sync after the take-over: %+v %v", rec, err)
			}

			// The old leader comes back as a follower with the same history.
			if err := sc.Restart(first); err != nil {
				t.Fatal(err)
			}
			if err := sc.WaitConverged(10 * time.Second); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(h, history(t, storecluster.New(sc.Store(first)))); diff != "" {
				t.Errorf("the restarted manager's history differs (-leader +restarted):\n%s", diff)
			}
		})
	}
}

// A controller on a store that cannot be read reports it, and writes
// nothing.
func TestSyncWithoutStore(t *testing.T) {
	sc := storetest.New(t, storetest.Options{Managers: 1})
	st := sc.Store(0)
	r := newRepo(t)
	r.commit(map[string]string{"web/compose.yaml": stack("app:1", 1)})
	src, err := gitsource.New(gitsource.Config{URL: r.dir, Ref: "main", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := reconcile.NewController(reconcile.ControllerConfig{Source: src, Cluster: storecluster.New(st),
		Workdir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	sc.Kill(0)
	if _, err := ctl.Sync(context.Background(), api.TriggerPoll); err == nil {
		t.Errorf("sync on a closed store: %v", err)
	}
}
