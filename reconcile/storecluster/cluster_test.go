package storecluster_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/gitorc/gitorc/reconcile/gitsource"
	"github.com/gitorc/gitorc/reconcile/gittest"
	"github.com/gitorc/gitorc/reconcile/storecluster"
	"github.com/gitorc/gitorc/secrets"
	"github.com/google/go-cmp/cmp"
)

// repo is a real local repository driven with the git CLI.
type repo struct {
	*gittest.Repo
	t   *testing.T
	dir string
}

func newRepo(t *testing.T) *repo {
	t.Helper()
	g := gittest.New(t, "")
	return &repo{Repo: g, t: t, dir: g.Dir}
}

func (r *repo) commit(files map[string]string) string {
	r.t.Helper()
	return r.Commit("change", files)
}

// clock moves on by each wait's duration, after running onWait: what the
// orchestrator and agents do meanwhile.
type clock struct {
	mu     sync.Mutex
	now    time.Time
	onWait func()
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) After(d time.Duration) <-chan time.Time {
	if c.onWait != nil {
		c.onWait()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// orchestrate stands for the orchestrator and the agents, writing to the
// store: a service whose image is bad is rolled back; every other service
// gets its replicas running its current spec.
func orchestrate(t *testing.T, st *store.Store, bad ...string) {
	t.Helper()
	_, err := st.Update(context.Background(), func(tx store.Tx) error {
		svcs, err := store.Find[api.Service](tx, store.All())
		if err != nil {
			return err
		}
		for _, svc := range svcs {
			if slices.Contains(bad, svc.Spec.Task.Container.Image) {
				if svc.Update == nil {
					svc.Update = &api.UpdateStatus{State: api.UpdateRollbackCompleted, Message: "task exited (1)"}
					if err := tx.Update(svc); err != nil {
						return err
					}
				}
				continue
			}
			tasks, err := store.Find[api.Task](tx, store.ByService(svc.ID))
			if err != nil {
				return err
			}
			for _, old := range tasks {
				if err := tx.Delete(store.KindTask, old.ID, 0); err != nil {
					return err
				}
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

func stack(image string, replicas int) string {
	return fmt.Sprintf("services:\n  app:\n    image: %s\n    deploy:\n      replicas: %d\n    networks: [back]\n"+
		"networks:\n  back: {}\n", image, replicas)
}

// dump is every object the sync controller manages, with its version.
func dump(t *testing.T, st *store.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := st.View(func(tx store.ReadTx) error {
		for _, k := range []store.Kind{store.KindService, store.KindNetwork, store.KindSecret, store.KindConfig, store.KindVolume} {
			objs, err := tx.Find(k, store.All())
			if err != nil {
				return err
			}
			for _, o := range objs {
				out[fmt.Sprintf("%s/%s", k, o.GetMeta().ID)] = fmt.Sprintf("v%d %+v", o.GetMeta().Version, o)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func service(t *testing.T, st *store.Store, name string) *api.Service {
	t.Helper()
	var svc *api.Service
	err := st.View(func(tx store.ReadTx) error {
		got, err := store.Find[api.Service](tx, store.ByName(name))
		if len(got) == 1 {
			svc = got[0]
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// TestSyncOverStore runs the sync controller against a real one-manager
// store: deploy, a broken commit, a failed rollout reverted, and a prune.
func TestSyncOverStore(t *testing.T) {
	ctx := context.Background()
	sc := storetest.New(t, storetest.Options{Managers: 1})
	st := sc.Store(0)
	cl := storecluster.New(st)
	r := newRepo(t)
	src, err := gitsource.New(gitsource.Config{URL: r.dir, Ref: "main", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	id, err := secrets.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	ctl, err := reconcile.NewController(reconcile.ControllerConfig{Source: src, Cluster: cl, Secrets: id, Clock: clk,
		Workdir: t.TempDir(), ProgressDeadline: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	sync := func() api.SyncRecord {
		t.Helper()
		rec, err := ctl.Sync(ctx, api.TriggerWebhook)
		if err != nil {
			t.Fatalf("sync: %v", err)
		}
		return rec
	}
	state := func() api.SyncState {
		t.Helper()
		s, err := cl.Sync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// 1. First commit: objects created, Progressing; tasks run → Synced.
	sealed, err := secrets.Seal(id.Recipient(), api.SecretBytes("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	web := strings.Replace(stack("app:1", 2), "    networks: [back]\n", "    networks: [back]\n    secrets: [token]\n", 1) +
		"secrets:\n  token:\n    file: ./token.age\n"
	good := r.commit(map[string]string{"web/compose.yaml": web, "web/token.age": string(sealed), "db/compose.yaml": stack("pg:16", 1)})
	var sawProgressing bool
	clk.onWait = func() {
		if s := state(); s.Phase == api.SyncProgressing && s.Revision == good && service(t, st, "web_app") != nil {
			sawProgressing = true
		}
		orchestrate(t, st)
	}
	if rec := sync(); rec.Result != api.SyncSynced || rec.Revision != good {
		t.Fatalf("first commit: %+v", rec)
	}
	if !sawProgressing {
		t.Error("state was not Progressing with the objects created while the rollout ran")
	}
	if s := state(); s.Phase != api.SyncSynced || s.LastGoodRevision != good {
		t.Fatalf("state %+v", s)
	}
	actual, err := cl.Actual(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(actual.Services) != 2 || len(actual.Networks) != 2 || len(actual.Secrets) != 1 || actual.Secrets[0].Data != nil ||
		actual.Secrets[0].DataHash != id.Hash(api.SecretBytes("s3cret")) {
		t.Fatalf("actual %+v", actual)
	}
	if cs := reconcile.Plan(reconcile.Stamp(actual), actual); cs.HasChanges() {
		t.Errorf("re-plan after apply: %+v", cs)
	}
	err = st.View(func(tx store.ReadTx) error {
		secs, err := store.Find[api.Secret](tx, store.All())
		if err == nil && string(secs[0].Spec.Data.Reveal()) != "s3cret" {
			t.Errorf("stored secret data %q", secs[0].Spec.Data.Reveal())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	goodWeb := service(t, st, "web_app").Spec

	// 2. A broken commit: Failed with file:line, the store unchanged.
	before := dump(t, st)
	broken := r.commit(map[string]string{"web/compose.yaml": web + "  oops: [\n"})
	rec := sync()
	if rec.Result != api.SyncFailed || !strings.Contains(rec.Message, "web/compose.yaml:") {
		t.Fatalf("broken commit: %+v", rec)
	}
	if diff := cmp.Diff(before, dump(t, st)); diff != "" {
		t.Errorf("a broken commit changed the store (-before +after):\n%s", diff)
	}
	if s := state(); s.Phase != api.SyncFailed || !slices.Contains(s.FailedRevisions, broken) {
		t.Errorf("state %+v", s)
	}

	// 3. A rollout that rolls back: Degraded, reverted, not retried.
	clk.onWait = func() { orchestrate(t, st, "app:bad") }
	bad := r.commit(map[string]string{"web/compose.yaml": strings.Replace(web, "app:1", "app:bad", 1)})
	rec = sync()
	if rec.Result != api.SyncDegraded || rec.Revision != bad {
		t.Fatalf("bad commit: %+v", rec)
	}
	s := state()
	if s.Phase != api.SyncDegraded || s.Revision != good || !slices.Contains(s.FailedRevisions, bad) ||
		!strings.Contains(s.Message, "reverted to "+good[:7]) {
		t.Fatalf("state after revert %+v", s)
	}
	svc := service(t, st, "web_app")
	if diff := cmp.Diff(goodWeb, svc.Spec); diff != "" {
		t.Errorf("web_app not back on the good spec (-want +got):\n%s", diff)
	}
	if svc.PreviousSpec == nil || svc.PreviousSpec.Task.Container.Image != "app:bad" {
		t.Errorf("PreviousSpec %+v", svc.PreviousSpec)
	}
	n := len(history(t, cl))
	if rec := sync(); rec.ID != "" || len(history(t, cl)) != n {
		t.Errorf("failed commit retried with the same HEAD: %+v", rec)
	}

	// 4. A removed stack is pruned.
	clk.onWait = func() { orchestrate(t, st) }
	pruned := r.commit(map[string]string{"web/compose.yaml": web, "db/compose.yaml": ""})
	if rec := sync(); rec.Result != api.SyncSynced || rec.Revision != pruned {
		t.Fatalf("prune commit: %+v", rec)
	}
	if service(t, st, "db_app") != nil {
		t.Error("db_app was not pruned")
	}
	if service(t, st, "web_app") == nil {
		t.Error("web_app is gone")
	}

	var results []string
	for _, r := range history(t, cl) {
		results = append(results, fmt.Sprintf("%s %s %s", r.Revision[:7], r.Trigger, r.Result))
	}
	want := []string{good[:7] + " webhook synced", broken[:7] + " webhook failed", bad[:7] + " webhook degraded",
		good[:7] + " revert synced", pruned[:7] + " webhook synced"}
	if diff := cmp.Diff(want, results); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
}

func history(t *testing.T, cl *storecluster.Cluster) []api.SyncRecord {
	t.Helper()
	h, err := cl.History(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestCommitIsAtomic: a commit that fails part-way writes nothing.
func TestCommitIsAtomic(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t, storetest.Options{Managers: 1}).Store(0)
	cl := storecluster.New(st)
	// A foreign service holding a name makes the second create conflict.
	_, err := st.Update(ctx, func(tx store.Tx) error {
		return tx.Create(&api.Service{Spec: api.ServiceSpec{Name: "taken"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	before := dump(t, st)
	err = cl.Commit(ctx, reconcile.Commit{
		Put: reconcile.State{
			Networks: []api.NetworkSpec{{Name: "n", Driver: "overlay"}},
			Services: []api.ServiceSpec{{Name: "new"}, {Name: "dup"}, {Name: "dup"}},
		},
		State:   api.SyncState{Phase: api.SyncProgressing, Revision: "abc"},
		Records: []api.SyncRecord{{Meta: api.Meta{ID: "r1"}, Revision: "abc"}},
	})
	if err == nil {
		t.Fatal("commit creating one name twice succeeded")
	}
	if diff := cmp.Diff(before, dump(t, st)); diff != "" {
		t.Errorf("failed commit changed the store (-before +after):\n%s", diff)
	}
	if s, _ := cl.Sync(ctx); s.Revision != "" {
		t.Errorf("sync state written: %+v", s)
	}
	if h := history(t, cl); len(h) != 0 {
		t.Errorf("history written: %+v", h)
	}
	// Deleting what is already gone is not an error.
	if err := cl.Commit(ctx, reconcile.Commit{Delete: []reconcile.Ref{{Kind: reconcile.KindService, Name: "gone"}}}); err != nil {
		t.Errorf("delete of a missing object: %v", err)
	}
}

// The history keeps the newest HistoryLimit records: the oldest go.
func TestHistoryIsTrimmed(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t, storetest.Options{Managers: 1}).Store(0)
	cl := storecluster.New(st)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	state, err := cl.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// In batches, as syncs write them (one or two per commit).
	total := storecluster.HistoryLimit + 7
	for i := 0; i < total; i += 2 {
		var recs []api.SyncRecord
		for j := i; j < min(i+2, total); j++ {
			recs = append(recs, api.SyncRecord{Revision: fmt.Sprintf("r%03d", j), StartedAt: start.Add(time.Duration(j) * time.Minute)})
		}
		if err := cl.Commit(ctx, reconcile.Commit{State: state, Records: recs}); err != nil {
			t.Fatal(err)
		}
		if state, err = cl.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	h, err := cl.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != storecluster.HistoryLimit {
		t.Fatalf("%d records kept, want %d", len(h), storecluster.HistoryLimit)
	}
	if first, last := h[0].Revision, h[len(h)-1].Revision; first != "r007" || last != fmt.Sprintf("r%03d", total-1) {
		t.Errorf("history runs %s..%s, want r007..r%03d", first, last, total-1)
	}
}

// TestActualReservesClusterPorts: the planner sees the ports the nodes
// listen on for the cluster (a service publishing one is refused), and
// no more once a node is removed.
func TestActualReservesClusterPorts(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t, storetest.Options{Managers: 1}).Store(0)
	cl := storecluster.New(st)
	_, err := st.Update(ctx, func(tx store.Tx) error {
		for _, n := range []*api.Node{
			{Meta: api.Meta{ID: "m1"}, Spec: api.NodeSpec{Role: api.RoleManager},
				Description: api.NodeDescription{WireGuard: &api.WireGuardInfo{PublicKey: "k1", Port: 51820}},
				Manager:     &api.ManagerStatus{RaftID: "m1", Addr: "192.0.2.1:4270", RaftAddr: "192.0.2.1:4271"}},
			{Meta: api.Meta{ID: "w1"}, Spec: api.NodeSpec{Role: api.RoleWorker},
				Description: api.NodeDescription{WireGuard: &api.WireGuardInfo{PublicKey: "k2", Port: 51820}}},
			{Meta: api.Meta{ID: "w2"}, Spec: api.NodeSpec{Role: api.RoleWorker}, RemovedAt: time.Unix(1, 0),
				Description: api.NodeDescription{WireGuard: &api.WireGuardInfo{PublicKey: "k3", Port: 51999}}},
		} {
			if err := tx.Create(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	actual, err := cl.Actual(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []reconcile.ReservedPort{
		{Protocol: api.ProtocolTCP, Port: 4270, Use: "the managers' API"},
		{Protocol: api.ProtocolTCP, Port: 4271, Use: "Raft between managers"},
		{Protocol: api.ProtocolUDP, Port: 51820, Use: "WireGuard between nodes"},
	}
	if diff := cmp.Diff(want, actual.Reserved); diff != "" {
		t.Errorf("reserved ports (-want +got):\n%s", diff)
	}
	desired := reconcile.State{Services: []api.ServiceSpec{{Name: "ops_vpn", Stack: "ops",
		Endpoint: api.EndpointSpec{Ports: []api.PortConfig{{Protocol: api.ProtocolUDP, Target: 51820, Published: 51820, Mode: api.PublishIngress}}}}}}
	if cs := reconcile.Plan(desired, actual); len(cs.Problems) != 1 || !strings.Contains(cs.Problems[0], "udp port 51820") {
		t.Errorf("plan of a service on the WireGuard port: problems %q", cs.Problems)
	}
}

// TestChangedContentKeepsTheOldVersion: a commit that changes a secret's
// or config's content keeps what it had as an object of its own, which
// the planner never sees; the same content again keeps nothing more.
func TestChangedContentKeepsTheOldVersion(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t, storetest.Options{Managers: 1}).Store(0)
	cl := storecluster.New(st)
	owned := map[string]string{api.LabelManagedBy: "gitorc", api.LabelStack: "app"}
	put := func(pw, motd string) {
		t.Helper()
		err := cl.Commit(ctx, reconcile.Commit{Put: reconcile.State{
			Secrets: []api.SecretSpec{{Name: "app_pw", Stack: "app", Labels: owned, DataHash: "h-" + pw, Data: api.SecretBytes(pw)}},
			Configs: []api.ConfigSpec{{Name: "app_motd", Stack: "app", Labels: owned, DataHash: "h-" + motd, Data: []byte(motd)}},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	put("one", "hello")
	put("two", "hello")
	put("two", "hello")
	var secrets, configs []string
	if err := st.View(func(tx store.ReadTx) error {
		ss, err := store.Find[api.Secret](tx, store.All())
		for _, s := range ss {
			secrets = append(secrets, fmt.Sprintf("%s=%s of %q", s.Spec.Name, s.Spec.Data.Reveal(), s.VersionOf()))
		}
		if err != nil {
			return err
		}
		cs, err := store.Find[api.Config](tx, store.All())
		for _, c := range cs {
			configs = append(configs, fmt.Sprintf("%s=%s", c.Spec.Name, c.Spec.Data))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(secrets)
	if want := []string{`app_pw=two of ""`, `app_pw@h-one=one of "app_pw"`}; !slices.Equal(secrets, want) {
		t.Errorf("secrets %q, want %q", secrets, want)
	}
	if want := []string{"app_motd=hello"}; !slices.Equal(configs, want) {
		t.Errorf("configs %q, want %q (the content did not change)", configs, want)
	}
	actual, err := cl.Actual(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(actual.Secrets) != 1 || actual.Secrets[0].Name != "app_pw" {
		t.Errorf("the planner sees secrets %+v, want app_pw alone", actual.Secrets)
	}
}

// The notifier's mark on a record survives the controller writing the
// record again (its end), which knows nothing of it; a record gone from
// the history is no error.
func TestNotifiedMarkKept(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t, storetest.Options{Managers: 1}).Store(0)
	cl := storecluster.New(st)
	state, err := cl.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rec := api.SyncRecord{Meta: api.Meta{ID: "r1"}, Revision: "abc", StartedAt: time.Now(), Result: api.SyncProgressing}
	if err := cl.Commit(ctx, reconcile.Commit{State: state, Records: []api.SyncRecord{rec}}); err != nil {
		t.Fatal(err)
	}
	if err := cl.MarkNotified(ctx, "r1", "pending"); err != nil {
		t.Fatal(err)
	}
	if state, err = cl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	rec.Result, rec.FinishedAt = api.SyncSynced, time.Now()
	if err := cl.Commit(ctx, reconcile.Commit{State: state, Records: []api.SyncRecord{rec}}); err != nil {
		t.Fatal(err)
	}
	h := history(t, cl)
	if len(h) != 1 || h[0].Notified != "pending" || h[0].Result != api.SyncSynced {
		t.Fatalf("history %+v: want r1 synced, its pending told", h)
	}
	if err := cl.MarkNotified(ctx, "r1", "synced"); err != nil {
		t.Fatal(err)
	}
	if h := history(t, cl); h[0].Notified != "synced" {
		t.Errorf("notified %q, want synced", h[0].Notified)
	}
	if err := cl.MarkNotified(ctx, "gone", "synced"); err != nil {
		t.Errorf("a record gone from the history: %v", err)
	}
}

// The first commits of a cluster, made at once (two stack deploys), all
// go through: each creates the sync state it did not see.
func TestConcurrentFirstCommits(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t, storetest.Options{Managers: 1}).Store(0)
	cl := storecluster.New(st)
	const n = 3 // deploys a CI job starts at once
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- cl.Commit(ctx, reconcile.Commit{State: api.SyncState{Message: fmt.Sprintf("deploy %d", i)},
				Records: []api.SyncRecord{{Revision: fmt.Sprintf("r%d", i), StartedAt: time.Now()}}})
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("a first commit: %v", err)
		}
	}
	if h := history(t, cl); len(h) != n {
		t.Errorf("%d records, want %d", len(h), n)
	}
}
