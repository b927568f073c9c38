package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/reconcile/gitsource"
	"github.com/gitorc/gitorc/reconcile/gittest"
	"github.com/gitorc/gitorc/secrets"
	"github.com/google/go-cmp/cmp"
)

// gitRepo is a real local repository driven with the git CLI.
type gitRepo struct {
	*gittest.Repo
	t   testing.TB
	dir string
}

func newGitRepo(t testing.TB) *gitRepo {
	t.Helper()
	g := gittest.New(t, "")
	return &gitRepo{Repo: g, t: t, dir: g.Dir}
}

func (r *gitRepo) git(args ...string) string { r.t.Helper(); return r.Git(args...) }

func (r *gitRepo) commit(msg string, files map[string]string) string {
	r.t.Helper()
	return r.Commit(msg, files)
}

func (r *gitRepo) source() *gitsource.Source {
	r.t.Helper()
	s, err := gitsource.New(gitsource.Config{URL: r.dir, Ref: "main", DataDir: r.t.TempDir()})
	if err != nil {
		r.t.Fatal(err)
	}
	return s
}

// stepClock is a manual clock: every wait moves time on by its duration
// and first runs onWait, which stands for what the cluster does meanwhile.
type stepClock struct {
	mu     sync.Mutex
	now    time.Time
	onWait func()
}

func newStepClock() *stepClock { return &stepClock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)} }

func (c *stepClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *stepClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	hook := c.onWait
	c.mu.Unlock()
	if hook != nil {
		hook()
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	c.mu.Unlock()
	return ch
}

// memCluster is an in-memory Cluster. Commit is all or nothing.
type memCluster struct {
	mu       sync.Mutex
	state    State
	services map[string]*api.Service // by name: Update and PreviousSpec
	tasks    map[string][]api.Task   // by service name
	sync     api.SyncState
	records  []api.SyncRecord
	commits  int
	failNext error
	// failWhen, if set, fails the commits it returns true for.
	failWhen func(Commit) bool
}

var _ Cluster = (*memCluster)(nil)

func newMemCluster() *memCluster {
	return &memCluster{services: map[string]*api.Service{}, tasks: map[string][]api.Task{}}
}

func (m *memCluster) Actual(context.Context) (State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := cloneState(m.state)
	for i := range s.Secrets {
		s.Secrets[i].Data = nil
	}
	return s, nil
}

func cloneState(s State) State {
	return State{Networks: slices.Clone(s.Networks), Secrets: slices.Clone(s.Secrets), Configs: slices.Clone(s.Configs),
		Volumes: slices.Clone(s.Volumes), Services: slices.Clone(s.Services), Policies: slices.Clone(s.Policies)}
}

func (m *memCluster) Observe(_ context.Context, names []string) (map[string]Observed, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]Observed{}
	for _, n := range names {
		o := Observed{Tasks: slices.Clone(m.tasks[n])}
		if svc, ok := m.services[n]; ok {
			cp := *svc
			o.Service = &cp
		}
		out[n] = o
	}
	return out, nil
}

func (m *memCluster) Sync(context.Context) (api.SyncState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sync
	s.FailedRevisions = slices.Clone(s.FailedRevisions)
	return s, nil
}

func (m *memCluster) Commit(_ context.Context, c Commit) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.failNext; err != nil {
		m.failNext = nil
		return err
	}
	if m.failWhen != nil && m.failWhen(c) {
		return errors.New("not leader")
	}
	m.commits++
	m.state.Networks = putByName(m.state.Networks, c.Put.Networks, func(x api.NetworkSpec) string { return x.Name })
	m.state.Secrets = putByName(m.state.Secrets, c.Put.Secrets, func(x api.SecretSpec) string { return x.Name })
	m.state.Configs = putByName(m.state.Configs, c.Put.Configs, func(x api.ConfigSpec) string { return x.Name })
	m.state.Volumes = putByName(m.state.Volumes, c.Put.Volumes, func(x api.VolumeSpec) string { return x.Name })
	m.state.Services = putByName(m.state.Services, c.Put.Services, func(x api.ServiceSpec) string { return x.Name })
	for _, s := range c.Put.Services {
		svc := &api.Service{Spec: s}
		if old, ok := m.services[s.Name]; ok {
			prev := old.Spec
			svc.PreviousSpec = &prev
		}
		m.services[s.Name] = svc
	}
	for _, d := range c.Delete {
		switch d.Kind {
		case KindNetwork:
			m.state.Networks = slices.DeleteFunc(m.state.Networks, func(x api.NetworkSpec) bool { return x.Name == d.Name })
		case KindSecret:
			m.state.Secrets = slices.DeleteFunc(m.state.Secrets, func(x api.SecretSpec) bool { return x.Name == d.Name })
		case KindConfig:
			m.state.Configs = slices.DeleteFunc(m.state.Configs, func(x api.ConfigSpec) bool { return x.Name == d.Name })
		case KindVolume:
			m.state.Volumes = slices.DeleteFunc(m.state.Volumes, func(x api.VolumeSpec) bool { return x.Name == d.Name })
		case KindService:
			m.state.Services = slices.DeleteFunc(m.state.Services, func(x api.ServiceSpec) bool { return x.Name == d.Name })
			delete(m.services, d.Name)
			delete(m.tasks, d.Name)
		}
	}
	if c.Base != nil {
		m.sync = MergeSyncState(*c.Base, c.State, m.sync)
	} else {
		m.sync = c.State
	}
	m.sync.FailedRevisions = slices.Clone(m.sync.FailedRevisions)
	for _, r := range c.Records {
		if i := slices.IndexFunc(m.records, func(x api.SyncRecord) bool { return x.ID == r.ID }); i >= 0 {
			m.records[i] = r
		} else {
			m.records = append(m.records, r)
		}
	}
	return nil
}

func putByName[T any](have, put []T, name func(T) string) []T {
	for _, p := range put {
		if i := slices.IndexFunc(have, func(x T) bool { return name(x) == name(p) }); i >= 0 {
			have[i] = p
		} else {
			have = append(have, p)
		}
	}
	return have
}

// orchestrate stands for the orchestrator and the agents: services whose
// image is bad roll back; the others get every replica running.
func (m *memCluster) orchestrate(bad ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, svc := range m.services {
		if slices.Contains(bad, svc.Spec.Task.Container.Image) {
			svc.Update = &api.UpdateStatus{State: api.UpdateRollbackCompleted, Message: "task exited (1)"}
			continue
		}
		var tasks []api.Task
		for range svc.Spec.Replicas {
			tasks = append(tasks, api.Task{ServiceName: name, Spec: svc.Spec.Task, DesiredState: api.TaskRunning,
				Status: api.TaskStatus{State: api.TaskRunning}})
		}
		m.tasks[name] = tasks
	}
}

func (m *memCluster) image(name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.state.Services {
		if s.Name == name {
			return s.Task.Container.Image
		}
	}
	return ""
}

func (m *memCluster) serviceNames() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return serviceNames(m.state)
}

func stack(image string, replicas int) string {
	return fmt.Sprintf("services:\n  app:\n    image: %s\n    deploy:\n      replicas: %d\n", image, replicas)
}

type harness struct {
	repo    *gitRepo
	cluster *memCluster
	clock   *stepClock
	ctl     *Controller
	id      *secrets.Identity
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	id, err := secrets.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{repo: newGitRepo(t), cluster: newMemCluster(), clock: newStepClock(), id: id}
	h.ctl, err = NewController(ControllerConfig{Source: h.repo.source(), Cluster: h.cluster, Secrets: id,
		Clock: h.clock, Workdir: t.TempDir(), ProgressDeadline: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) sync(t testing.TB) api.SyncRecord {
	t.Helper()
	rec, err := h.ctl.Sync(context.Background(), api.TriggerManual)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return rec
}

func TestSyncDeploysTracksAndIsIdempotent(t *testing.T) {
	h := newHarness(t)
	c1 := h.repo.commit("first", map[string]string{"web/compose.yaml": stack("app:1", 2), "db/compose.yaml": stack("pg:16", 1)})
	h.clock.onWait = func() { h.cluster.orchestrate() }

	rec := h.sync(t)
	if rec.Result != api.SyncSynced || rec.Revision != c1 || rec.Trigger != api.TriggerManual || rec.FinishedAt.IsZero() {
		t.Fatalf("record %+v", rec)
	}
	st := h.cluster.sync
	if st.Phase != api.SyncSynced || st.Revision != c1 || st.LastGoodRevision != c1 || st.LastFetch.IsZero() {
		t.Fatalf("state %+v", st)
	}
	if diff := cmp.Diff([]string{"db_app", "web_app"}, h.cluster.serviceNames()); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	if slices.Sort(rec.Services); strings.Join(rec.Services, " ") != "db_app web_app" {
		t.Errorf("the record names services %v, want those it created", rec.Services)
	}
	if d := st.LastDiff; d == nil || d.Revision != c1 || d.Record != rec.ID || !strings.Contains(d.Text, "+ service web_app") ||
		!strings.Contains(d.Text, "+ service db_app") {
		t.Errorf("last diff %+v", d)
	}
	for _, s := range h.cluster.state.Services {
		if !Owned(s.Labels) || s.Labels[LabelSpecHash] == "" {
			t.Errorf("%s not stamped: %v", s.Name, s.Labels)
		}
	}
	// Same HEAD, synced: nothing happens but the fetch time.
	commits := h.cluster.commits
	if rec := h.sync(t); rec.ID != "" {
		t.Errorf("second sync of the same commit: %+v", rec)
	}
	if len(h.cluster.records) != 1 || h.cluster.commits != commits+1 || len(h.cluster.state.Services) != 2 {
		t.Errorf("second sync wrote %d commits, %d records", h.cluster.commits-commits, len(h.cluster.records))
	}
}

func TestSyncBrokenCommitAppliesNothing(t *testing.T) {
	h := newHarness(t)
	h.clock.onWait = func() { h.cluster.orchestrate() }
	h.repo.commit("good", map[string]string{"web/compose.yaml": stack("app:1", 1)})
	h.sync(t)
	before, _ := h.cluster.Actual(context.Background())

	bad := h.repo.commit("broken", map[string]string{
		"web/compose.yaml": stack("app:2", 3),
		"api/compose.yaml": "services:\n  app:\n    image: api:1\n    deploy:\n      replicas: [1\n",
		"job/compose.yaml": "services:\n  app:\n    image: j\n    deploy:\n      mode: nope\n",
	})
	rec := h.sync(t)
	if rec.Result != api.SyncFailed || rec.Revision != bad {
		t.Fatalf("record %+v", rec)
	}
	for _, want := range []string{"api/compose.yaml:5: invalid YAML", "job/compose.yaml:5: services.app.deploy.mode"} {
		if !strings.Contains(rec.Message, want) || !strings.Contains(h.cluster.sync.Message, want) {
			t.Errorf("message lacks %q:\n%s", want, rec.Message)
		}
	}
	if strings.Contains(rec.Message, os.TempDir()) {
		t.Errorf("message names the temporary tree:\n%s", rec.Message)
	}
	after, _ := h.cluster.Actual(context.Background())
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("a broken commit changed the cluster (-before +after):\n%s", diff)
	}
	st := h.cluster.sync
	if st.Phase != api.SyncFailed || !slices.Contains(st.FailedRevisions, bad) || st.LastGoodRevision == bad {
		t.Errorf("state %+v", st)
	}
	// Not retried until HEAD moves; then the next good commit deploys.
	if rec := h.sync(t); rec.ID != "" {
		t.Errorf("broken commit retried: %+v", rec)
	}
	good := h.repo.commit("fixed", map[string]string{"api/compose.yaml": "", "job/compose.yaml": ""})
	if rec := h.sync(t); rec.Result != api.SyncSynced || rec.Revision != good || h.cluster.image("web_app") != "app:2" {
		t.Errorf("fixed commit: %+v, image %s", rec, h.cluster.image("web_app"))
	}
}

func TestSyncDegradedRevertsToLastGood(t *testing.T) {
	h := newHarness(t)
	h.clock.onWait = func() { h.cluster.orchestrate("app:bad") }
	good := h.repo.commit("good", map[string]string{"web/compose.yaml": stack("app:1", 2), "db/compose.yaml": stack("pg:16", 1)})
	h.sync(t)
	goodSpec := h.cluster.state.Services

	bad := h.repo.commit("bad image", map[string]string{"web/compose.yaml": stack("app:bad", 2), "db/compose.yaml": ""})
	rec := h.sync(t)
	if rec.Result != api.SyncDegraded || rec.Revision != bad || !strings.Contains(rec.Message, "update rollback_completed: task exited (1)") {
		t.Fatalf("record %+v", rec)
	}
	st := h.cluster.sync
	if st.Phase != api.SyncDegraded || st.Revision != good || st.LastGoodRevision != good ||
		!slices.Equal(st.FailedRevisions, []string{bad}) || !strings.Contains(st.Message, "reverted to "+good[:7]) {
		t.Fatalf("state %+v", st)
	}
	if diff := cmp.Diff(goodSpec, h.cluster.state.Services); diff != "" {
		t.Errorf("not back on the good specs (-want +got):\n%s", diff)
	}
	recs := h.cluster.records
	if len(recs) != 3 || recs[2].Trigger != api.TriggerRevert || recs[2].Revision != good || recs[2].Result != api.SyncSynced {
		t.Errorf("history %+v", recs)
	}
	// The failed commit is not retried while HEAD stays on it.
	if rec := h.sync(t); rec.ID != "" || len(h.cluster.records) != 3 {
		t.Errorf("failed commit retried: %+v", rec)
	}
	next := h.repo.commit("fixed image", map[string]string{"web/compose.yaml": stack("app:2", 2)})
	if rec := h.sync(t); rec.Result != api.SyncSynced || h.cluster.sync.LastGoodRevision != next {
		t.Errorf("next good commit: %+v", rec)
	}
}

func TestSyncDegradedWithRevertOff(t *testing.T) {
	h := newHarness(t)
	h.cluster.sync.Source.Revert = RevertOff
	h.clock.onWait = func() { h.cluster.orchestrate("app:bad") }
	h.repo.commit("good", map[string]string{"web/compose.yaml": stack("app:1", 1)})
	h.sync(t)
	bad := h.repo.commit("bad", map[string]string{"web/compose.yaml": stack("app:bad", 1)})
	if rec := h.sync(t); rec.Result != api.SyncDegraded {
		t.Fatalf("record %+v", rec)
	}
	if st := h.cluster.sync; st.Revision != bad || st.Phase != api.SyncDegraded || h.cluster.image("web_app") != "app:bad" {
		t.Errorf("revert off still reverted: %+v", st)
	}
}

func TestSyncDeadlineDegrades(t *testing.T) {
	h := newHarness(t) // nothing ever runs: no onWait
	h.repo.commit("first", map[string]string{"web/compose.yaml": stack("app:1", 1)})
	rec := h.sync(t)
	if rec.Result != api.SyncDegraded || !strings.Contains(rec.Message, "no healthy rollout after 1m0s") ||
		!strings.Contains(rec.Message, "no earlier good revision") {
		t.Errorf("record %+v", rec)
	}
}

func TestSyncPrunesRemovedServices(t *testing.T) {
	h := newHarness(t)
	h.clock.onWait = func() { h.cluster.orchestrate() }
	h.repo.commit("two", map[string]string{"web/compose.yaml": stack("app:1", 1), "db/compose.yaml": stack("pg:16", 1)})
	h.sync(t)
	foreign := api.ServiceSpec{Name: "handmade", Replicas: 1}
	h.cluster.state.Services = append(h.cluster.state.Services, foreign)
	h.repo.commit("drop db", map[string]string{"db/compose.yaml": ""})
	if rec := h.sync(t); rec.Result != api.SyncSynced {
		t.Fatalf("record %+v", rec)
	}
	if diff := cmp.Diff([]string{"web_app", "handmade"}, h.cluster.serviceNames()); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
}

func TestSyncOpensSealedSecrets(t *testing.T) {
	h := newHarness(t)
	h.clock.onWait = func() { h.cluster.orchestrate() }
	const plain = "hunter2-very-secret"
	sealed, err := secrets.Seal(h.id.Recipient(), api.SecretBytes(plain))
	if err != nil {
		t.Fatal(err)
	}
	withSecret := "services:\n  app:\n    image: app:1\n    secrets: [db]\nsecrets:\n  db:\n    file: ./db.age\n"
	h.repo.commit("secret", map[string]string{"web/compose.yaml": withSecret, "web/db.age": string(sealed)})
	rec := h.sync(t)
	if rec.Result != api.SyncSynced {
		t.Fatalf("record %+v", rec)
	}
	if len(h.cluster.state.Secrets) != 1 {
		t.Fatalf("secrets %+v", h.cluster.state.Secrets)
	}
	s := h.cluster.state.Secrets[0]
	if string(s.Data.Reveal()) != plain || s.DataHash != h.id.Hash(api.SecretBytes(plain)) {
		t.Errorf("secret data %q hash %s", s.Data.Reveal(), s.DataHash)
	}
	// A file that is not sealed for this cluster fails the revision.
	other, _ := secrets.GenerateIdentity()
	foreign, _ := secrets.Seal(other.Recipient(), api.SecretBytes(plain))
	h.repo.commit("wrong recipient", map[string]string{"web/db.age": string(foreign)})
	rec = h.sync(t)
	if rec.Result != api.SyncFailed || !strings.Contains(rec.Message, "web/db.age: secret") {
		t.Errorf("record %+v", rec)
	}
	for _, r := range h.cluster.records {
		if strings.Contains(fmt.Sprint(r), plain) {
			t.Errorf("plaintext in a record: %+v", r)
		}
	}
	if strings.Contains(fmt.Sprintf("%+v", h.cluster.sync), plain) || h.cluster.sync.LastDiff == nil ||
		strings.Contains(h.cluster.sync.LastDiff.Text, plain) {
		t.Error("plaintext in the sync state, or no diff kept")
	}
}

// A config from a file carries the commit's content, and a changed file
// changes the config.
func TestSyncReadsConfigFiles(t *testing.T) {
	h := newHarness(t)
	h.clock.onWait = func() { h.cluster.orchestrate() }
	stack := "services:\n  app:\n    image: app:1\n    configs:\n      - source: page\n        target: /www/index.html\nconfigs:\n  page:\n    file: ./index.html\n"
	for _, page := range []string{"<p>one</p>\n", "<p>two</p>\n"} {
		h.repo.commit("page", map[string]string{"web/compose.yaml": stack, "web/index.html": page})
		rec := h.sync(t)
		if rec.Result != api.SyncSynced {
			t.Fatalf("record %+v", rec)
		}
		if len(h.cluster.state.Configs) != 1 || string(h.cluster.state.Configs[0].Data) != page {
			t.Fatalf("configs %+v, want the data %q", h.cluster.state.Configs, page)
		}
	}
	// A file that leaves the repository is a problem of the revision.
	h.repo.commit("outside", map[string]string{"web/compose.yaml": strings.Replace(stack, "./index.html", "../../index.html", 1)})
	if rec := h.sync(t); rec.Result != api.SyncFailed {
		t.Errorf("record %+v, want failed", rec)
	}
}

func TestSyncCommitFailureChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.repo.commit("first", map[string]string{"web/compose.yaml": stack("app:1", 1)})
	h.cluster.failNext = errors.New("no leader")
	if _, err := h.ctl.Sync(context.Background(), api.TriggerPoll); err == nil || !strings.Contains(err.Error(), "no leader") {
		t.Fatalf("err %v", err)
	}
	if len(h.cluster.state.Services) != 0 || len(h.cluster.records) != 0 {
		t.Errorf("failed commit left %+v", h.cluster.state)
	}
	// The next sync applies it.
	h.clock.onWait = func() { h.cluster.orchestrate() }
	if rec := h.sync(t); rec.Result != api.SyncSynced {
		t.Errorf("record %+v", rec)
	}
}

func TestSyncSuspendedSkipsAutomaticSyncs(t *testing.T) {
	h := newHarness(t)
	h.cluster.sync.Suspended = true
	h.repo.commit("first", map[string]string{"web/compose.yaml": stack("app:1", 1)})
	if rec, err := h.ctl.Sync(context.Background(), api.TriggerPoll); err != nil || rec.ID != "" || h.cluster.commits != 0 {
		t.Errorf("suspended poll synced: %+v %v", rec, err)
	}
}

func TestSyncFetchErrorOnState(t *testing.T) {
	h := newHarness(t) // empty repository: the ref does not exist
	if _, err := h.ctl.Sync(context.Background(), api.TriggerPoll); err == nil {
		t.Fatal("no error")
	}
	if st := h.cluster.sync; st.LastFetchError == "" || st.LastFetch.IsZero() {
		t.Errorf("state %+v", st)
	}
}

func TestRunSyncsUntilCancelled(t *testing.T) {
	h := newHarness(t)
	h.repo.commit("first", map[string]string{"web/compose.yaml": stack("app:1", 1)})
	ctx, cancel := context.WithCancel(context.Background())
	polls := 0
	h.clock.onWait = func() {
		h.cluster.orchestrate()
		if h.cluster.sync.Phase == api.SyncSynced {
			if polls++; polls == 2 {
				cancel()
			}
		}
	}
	if err := h.ctl.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if h.cluster.sync.Phase != api.SyncSynced || len(h.cluster.records) != 1 {
		t.Errorf("state %+v, %d records", h.cluster.sync, len(h.cluster.records))
	}
}

func TestControllerConfigValidate(t *testing.T) {
	err := ControllerConfig{TrackInterval: -1}.Validate()
	for _, want := range []string{"source is required", "cluster is required", "must not be negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err %v lacks %q", err, want)
		}
	}
}

// scale changes a service behind Git's back, as gitorc service scale
// does: the spec changes, gitorc's labels stay.
func (m *memCluster) scale(name string, replicas uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, s := range m.state.Services {
		if s.Name == name {
			m.state.Services[i].Replicas = replicas
			if svc, ok := m.services[name]; ok {
				svc.Spec.Replicas = replicas
			}
		}
	}
}

func (m *memCluster) replicas(name string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.state.Services {
		if s.Name == name {
			return s.Replicas
		}
	}
	return 0
}

func (m *memCluster) setPin(rev string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sync.Pin = &api.SyncPin{Revision: rev}
}

func TestSyncSelfHealRestoresDrift(t *testing.T) {
	tests := []struct {
		name    string
		drift   func(m *memCluster)
		wantMsg string
	}{
		{"scaled", func(m *memCluster) { m.scale("web_app", 5) }, "service web_app (replicas) restored to revision"},
		{"image changed", func(m *memCluster) {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.state.Services[slices.IndexFunc(m.state.Services, func(s api.ServiceSpec) bool { return s.Name == "web_app" })].Task.Container.Image = "app:hand"
		}, "service web_app (task.container.image) restored"},
		{"service removed by hand", func(m *memCluster) {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.state.Services = slices.DeleteFunc(m.state.Services, func(s api.ServiceSpec) bool { return s.Name == "db_app" })
		}, "service db_app (re-created) restored"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			waits := 0
			h.clock.onWait = func() { waits++; h.cluster.orchestrate() }
			c1 := h.repo.commit("first", map[string]string{"web/compose.yaml": stack("app:1", 2), "db/compose.yaml": stack("pg:16", 1)})
			h.sync(t)
			want, _ := h.cluster.Actual(context.Background())

			tc.drift(h.cluster)
			waits = 0
			rec, err := h.ctl.Sync(context.Background(), api.TriggerPoll)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Trigger != api.TriggerSelfHeal || rec.Result != api.SyncSynced || rec.Revision != c1 ||
				!strings.Contains(rec.Message, tc.wantMsg) || rec.FinishedAt.IsZero() {
				t.Fatalf("record %+v", rec)
			}
			got, _ := h.cluster.Actual(context.Background())
			if diff := cmp.Diff(want, got, cmp.Transformer("sort", sortedServices)); diff != "" {
				t.Errorf("not restored (-want +got):\n%s", diff)
			}
			st := h.cluster.sync
			if st.Phase != api.SyncSynced || st.Revision != c1 || st.InFlight != nil || st.Message != rec.Message {
				t.Errorf("state %+v", st)
			}
			if waits != 0 {
				t.Errorf("self-heal tracked a rollout (%d waits)", waits)
			}
			if n := len(h.cluster.records); n != 2 {
				t.Errorf("%d records, want the deploy and the self-heal", n)
			}
			// Nothing drifted: nothing to do.
			if rec := h.sync(t); rec.ID != "" || len(h.cluster.records) != 2 {
				t.Errorf("second self-heal: %+v", rec)
			}
		})
	}
}

// sortedServices orders a state's services by name, as the store would
// list them.
func sortedServices(s State) State {
	s.Services = slices.Clone(s.Services)
	slices.SortFunc(s.Services, func(a, b api.ServiceSpec) int { return strings.Compare(a.Name, b.Name) })
	return s
}

func TestSyncSelfHealOffReportsOnly(t *testing.T) {
	h := newHarness(t)
	h.cluster.sync.Source.SelfHeal = SelfHealOff
	h.clock.onWait = func() { h.cluster.orchestrate() }
	h.repo.commit("first", map[string]string{"web/compose.yaml": stack("app:1", 2)})
	h.sync(t)
	h.cluster.scale("web_app", 5)
	for _, trig := range []api.SyncTrigger{api.TriggerPoll, api.TriggerWebhook, api.TriggerWatch} {
		if rec, err := h.ctl.Sync(context.Background(), trig); err != nil || rec.ID != "" {
			t.Errorf("%s sync with self-heal off: %+v %v", trig, rec, err)
		}
	}
	if n := h.cluster.replicas("web_app"); n != 5 {
		t.Errorf("replicas %d: drift restored with self-heal off", n)
	}
	d, err := h.ctl.Diff(context.Background(), DiffRequest{})
	if i := slices.IndexFunc(d.Changeset.Steps, func(s Step) bool { return s.Name == "web_app" }); err != nil || !d.Differs() || i < 0 || !d.Changeset.Steps[i].Drift {
		t.Errorf("diff does not show the drift: %+v %v", d, err)
	}
	// A manual sync restores it.
	if rec := h.sync(t); rec.Trigger != api.TriggerSelfHeal || h.cluster.replicas("web_app") != 2 {
		t.Errorf("manual sync: %+v, replicas %d", rec, h.cluster.replicas("web_app"))
	}
}

func TestSyncRollbackPin(t *testing.T) {
	h := newHarness(t)
	h.clock.onWait = func() { h.cluster.orchestrate() }
	poll := func() api.SyncRecord {
		t.Helper()
		rec, err := h.ctl.Sync(context.Background(), api.TriggerPoll)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	c1 := h.repo.commit("one", map[string]string{"web/compose.yaml": stack("app:1", 2)})
	poll()
	c2 := h.repo.commit("two", map[string]string{"web/compose.yaml": stack("app:2", 2)})
	poll()

	// The pin takes effect: the older revision rolls out, recorded as a rollback.
	h.cluster.setPin(c1)
	rec := poll()
	if rec.Trigger != api.TriggerRollback || rec.Revision != c1 || rec.Result != api.SyncSynced {
		t.Fatalf("rollback record %+v", rec)
	}
	st := h.cluster.sync
	if h.cluster.image("web_app") != "app:1" || st.Revision != c1 || st.Phase != api.SyncSynced ||
		st.Pin == nil || st.Pin.Head != c2 || st.LastGoodRevision != c1 {
		t.Fatalf("after the rollback: image %s, state %+v pin %+v", h.cluster.image("web_app"), st, st.Pin)
	}
	// It holds while HEAD stays; drift is healed to the pinned revision.
	if rec := poll(); rec.ID != "" {
		t.Errorf("pinned, same HEAD: %+v", rec)
	}
	h.cluster.scale("web_app", 7)
	if rec := poll(); rec.Trigger != api.TriggerSelfHeal || rec.Revision != c1 || h.cluster.image("web_app") != "app:1" ||
		h.cluster.replicas("web_app") != 2 {
		t.Errorf("self-heal while pinned: %+v", rec)
	}
	// A new commit releases it.
	c3 := h.repo.commit("three", map[string]string{"web/compose.yaml": stack("app:3", 2)})
	rec = poll()
	if rec.Revision != c3 || rec.Trigger != api.TriggerPoll || rec.Result != api.SyncSynced ||
		!strings.Contains(h.cluster.records[len(h.cluster.records)-1].Message, "rollback pin to "+c1[:7]+" released by the new commit "+c3[:7]) {
		t.Fatalf("new commit: %+v", rec)
	}
	if st := h.cluster.sync; st.Pin != nil || h.cluster.image("web_app") != "app:3" {
		t.Errorf("pin not released: %+v", st.Pin)
	}
	// So does gitorc sync, once the pin is in effect: the sync that
	// gitorc rollback asks for applies it.
	h.cluster.setPin(c2)
	if rec := h.sync(t); rec.Revision != c2 || rec.Trigger != api.TriggerRollback || h.cluster.image("web_app") != "app:2" {
		t.Fatalf("second pin: %+v", rec)
	}
	rec = h.sync(t)
	if rec.Revision != c3 || rec.Trigger != api.TriggerManual || !strings.Contains(rec.Message, "released by gitorc sync") ||
		h.cluster.sync.Pin != nil || h.cluster.image("web_app") != "app:3" {
		t.Errorf("manual sync: %+v pin %+v", rec, h.cluster.sync.Pin)
	}
}

func TestSyncRollbackToFailingRevisionReleasesPin(t *testing.T) {
	h := newHarness(t)
	h.clock.onWait = func() { h.cluster.orchestrate("app:gone") }
	old := h.repo.commit("old", map[string]string{"web/compose.yaml": stack("app:gone", 1)})
	good := h.repo.commit("good", map[string]string{"web/compose.yaml": stack("app:1", 1)})
	h.sync(t) // only HEAD ever ran: old was never deployed
	h.cluster.setPin(old)
	rec, err := h.ctl.Sync(context.Background(), api.TriggerPoll)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Revision != old || rec.Result != api.SyncDegraded || !strings.Contains(rec.Message, "the rollback pin is released") {
		t.Fatalf("record %+v", rec)
	}
	st := h.cluster.sync
	if st.Pin != nil || st.Revision != good || !slices.Contains(st.FailedRevisions, old) || h.cluster.image("web_app") != "app:1" {
		t.Errorf("state %+v, image %s", st, h.cluster.image("web_app"))
	}
}

// A rollback pin written while a sync tracks its rollout survives the
// sync's own writes of the state.
func TestSyncKeepsPinWrittenDuringRollout(t *testing.T) {
	h := newHarness(t)
	h.repo.commit("one", map[string]string{"web/compose.yaml": stack("app:1", 1)})
	h.sync(t)
	h.clock.onWait = func() {
		if h.cluster.sync.Pin == nil {
			h.cluster.setPin("0123456789012345678901234567890123456789")
		}
		h.cluster.orchestrate()
	}
	h.repo.commit("two", map[string]string{"web/compose.yaml": stack("app:2", 1)})
	if rec := h.sync(t); rec.Result != api.SyncSynced {
		t.Fatalf("record %+v", rec)
	}
	if p := h.cluster.sync.Pin; p == nil || p.Revision != "0123456789012345678901234567890123456789" {
		t.Errorf("the pin written during the rollout was lost: %+v", p)
	}
}

// A sync cut short (the leader lost its place) leaves its rollout in
// flight; a new controller finishes it, completing the same record.
func TestSyncResumesARolloutInFlight(t *testing.T) {
	for _, bad := range []bool{false, true} {
		t.Run(fmt.Sprintf("bad=%v", bad), func(t *testing.T) {
			h := newHarness(t)
			good := h.repo.commit("good", map[string]string{"web/compose.yaml": stack("app:1", 2)})
			h.clock.onWait = func() { h.cluster.orchestrate() }
			h.sync(t)
			image := "app:2"
			if bad {
				image = "app:bad"
			}
			next := h.repo.commit("next", map[string]string{"web/compose.yaml": stack(image, 2)})
			ctx, cancel := context.WithCancel(context.Background())
			h.clock.onWait = cancel // the leader goes before anything runs
			if _, err := h.ctl.Sync(ctx, api.TriggerWebhook); !errors.Is(err, context.Canceled) {
				t.Fatalf("cut short: %v", err)
			}
			st := h.cluster.sync
			if st.Phase != api.SyncProgressing || st.InFlight == nil || st.InFlight.Record.Revision != next {
				t.Fatalf("state after the cut %+v", st)
			}
			inflight := st.InFlight.Record.ID

			// The next leader: a new controller, its own clone.
			ctl, err := NewController(ControllerConfig{Source: h.repo.source(), Cluster: h.cluster, Secrets: h.id,
				Clock: h.clock, Workdir: t.TempDir(), ProgressDeadline: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			h.clock.onWait = func() { h.cluster.orchestrate("app:bad") }
			rec, err := ctl.Sync(context.Background(), api.TriggerPoll)
			if err != nil {
				t.Fatal(err)
			}
			if rec.ID != inflight || rec.Trigger != api.TriggerWebhook {
				t.Errorf("resumed record %+v, want the one in flight (%s)", rec, inflight)
			}
			var got []string
			for _, r := range h.cluster.records {
				got = append(got, fmt.Sprintf("%s %s %s", r.Revision[:7], r.Trigger, r.Result))
			}
			want := []string{good[:7] + " manual synced", next[:7] + " webhook synced"}
			if bad {
				want = []string{good[:7] + " manual synced", next[:7] + " webhook degraded", good[:7] + " revert synced"}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("history (-want +got):\n%s", diff)
			}
			st = h.cluster.sync
			if st.InFlight != nil {
				t.Errorf("still in flight: %+v", st.InFlight)
			}
			if wantImage := map[bool]string{false: "app:2", true: "app:1"}[bad]; h.cluster.image("web_app") != wantImage {
				t.Errorf("image %s, want %s", h.cluster.image("web_app"), wantImage)
			}
		})
	}
}

// A revert cut short is finished by the next leader, not started again.
func TestSyncResumesARevertInFlight(t *testing.T) {
	h := newHarness(t)
	good := h.repo.commit("good", map[string]string{"web/compose.yaml": stack("app:1", 2)})
	h.clock.onWait = func() { h.cluster.orchestrate() }
	h.sync(t)
	bad := h.repo.commit("bad", map[string]string{"web/compose.yaml": stack("app:bad", 2)})
	h.clock.onWait = func() { h.cluster.orchestrate("app:bad") }
	// The leader goes in the middle of the revert: its last write fails.
	h.cluster.failWhen = func(c Commit) bool {
		return len(c.Records) == 1 && c.Records[0].Trigger == api.TriggerRevert && c.Records[0].Result != api.SyncProgressing
	}
	if _, err := h.ctl.Sync(context.Background(), api.TriggerPoll); err == nil || !strings.Contains(err.Error(), "not leader") {
		t.Fatalf("cut short: %v", err)
	}
	h.cluster.failWhen = nil
	if st := h.cluster.sync; st.InFlight == nil || st.InFlight.Record.Trigger != api.TriggerRevert || st.Revision != good {
		t.Fatalf("state after the cut %+v", st)
	}
	ctl, err := NewController(ControllerConfig{Source: h.repo.source(), Cluster: h.cluster, Secrets: h.id,
		Clock: h.clock, Workdir: t.TempDir(), ProgressDeadline: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	h.clock.onWait = func() { h.cluster.orchestrate("app:bad") }
	if _, err := ctl.Sync(context.Background(), api.TriggerPoll); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range h.cluster.records {
		got = append(got, fmt.Sprintf("%s %s %s", r.Revision[:7], r.Trigger, r.Result))
	}
	want := []string{good[:7] + " manual synced", bad[:7] + " poll degraded", good[:7] + " revert synced"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	st := h.cluster.sync
	if st.InFlight != nil || st.Phase != api.SyncDegraded || !strings.Contains(st.Message, "reverted to "+good[:7]) ||
		h.cluster.image("web_app") != "app:1" {
		t.Errorf("state %+v", st)
	}
}

func TestMergeSyncState(t *testing.T) {
	pin := &api.SyncPin{Revision: "abc"}
	tests := []struct {
		name               string
		base, ours, theirs api.SyncState
		want               api.SyncState
	}{
		{"ours only", api.SyncState{Phase: api.SyncProgressing}, api.SyncState{Phase: api.SyncSynced}, api.SyncState{Phase: api.SyncProgressing},
			api.SyncState{Phase: api.SyncSynced}},
		{"theirs kept", api.SyncState{Phase: api.SyncProgressing}, api.SyncState{Phase: api.SyncSynced},
			api.SyncState{Phase: api.SyncProgressing, Pin: pin, Suspended: true},
			api.SyncState{Phase: api.SyncSynced, Pin: pin, Suspended: true}},
		{"ours clears", api.SyncState{Pin: pin}, api.SyncState{}, api.SyncState{Pin: pin}, api.SyncState{}},
		{"both changed: ours", api.SyncState{Message: "a"}, api.SyncState{Message: "b"}, api.SyncState{Message: "c"},
			api.SyncState{Message: "b"}},
		{"theirs clears a field ours kept", api.SyncState{Suspended: true, Message: "a"}, api.SyncState{Suspended: true, Message: "b"},
			api.SyncState{}, api.SyncState{Message: "b"}},
		{"meta is the store's", api.SyncState{}, api.SyncState{Meta: api.Meta{ID: "x", Version: 1}}, api.SyncState{Meta: api.Meta{ID: "sync", Version: 7}},
			api.SyncState{Meta: api.Meta{ID: "sync", Version: 7}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, MergeSyncState(tc.base, tc.ours, tc.theirs)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	h := newHarness(t)
	h.clock.onWait = func() { h.cluster.orchestrate() }
	const plain = "correct-horse-battery"
	sealed, err := secrets.Seal(h.id.Recipient(), api.SecretBytes(plain))
	if err != nil {
		t.Fatal(err)
	}
	withSecret := "services:\n  app:\n    image: app:1\n    secrets: [db]\nsecrets:\n  db:\n    file: ./db.age\n"
	c1 := h.repo.commit("first", map[string]string{"web/compose.yaml": withSecret, "web/db.age": string(sealed),
		"db/compose.yaml": stack("pg:16", 1)})
	h.sync(t)
	ctx := context.Background()

	d, err := h.ctl.Diff(ctx, DiffRequest{})
	if err != nil || d.Differs() || d.Revision != c1 || len(d.Changeset.Problems) > 0 {
		t.Fatalf("nothing changed: %+v %v", d, err)
	}
	resealed, _ := secrets.Seal(h.id.Recipient(), api.SecretBytes(plain+"-2"))
	c2 := h.repo.commit("second", map[string]string{"web/compose.yaml": strings.Replace(withSecret, "app:1", "app:2", 1),
		"web/db.age": string(resealed)})
	d, err = h.ctl.Diff(ctx, DiffRequest{})
	if err != nil || !d.Differs() || d.Revision != c2 {
		t.Fatalf("HEAD: %+v %v", d, err)
	}
	var out strings.Builder
	if err := Format(&out, d.Changeset, false, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"~ secret  web_db (update)", "data_hash: \"hmac-sha256:", "~ service web_app (update)",
		`task.container.image: "app:1" -> "app:2"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("diff lacks %q:\n%s", want, out.String())
		}
	}
	b, _ := json.Marshal(d)
	if strings.Contains(out.String()+string(b), plain) {
		t.Error("secret plaintext in the diff")
	}
	// The synced revision, by an abbreviated hash: nothing differs.
	if d, err := h.ctl.Diff(ctx, DiffRequest{Revision: c1[:8]}); err != nil || d.Differs() || d.Revision != c1 {
		t.Errorf("--revision %s: %+v %v", c1[:8], d, err)
	}
	if _, err := h.ctl.Diff(ctx, DiffRequest{Revision: "nosuchref"}); err == nil || !strings.Contains(err.Error(), "nosuchref not found") {
		t.Errorf("unknown revision: %v", err)
	}

	// A local tree: a service added, one removed.
	dir := writeTree(t, map[string]string{"web/compose.yaml": withSecret, "web/db.age": string(sealed),
		"cache/compose.yaml": stack("redis:7", 1)})
	d, err = h.ctl.Diff(ctx, DiffRequest{Dir: dir})
	if err != nil || d.Dir != dir {
		t.Fatal(err)
	}
	var services []string
	for _, s := range d.Changeset.Steps {
		if s.Kind == KindService && s.Action != Unchanged {
			services = append(services, s.Action.String()+" "+s.Name)
		}
	}
	if diff := cmp.Diff([]string{"create cache_app", "delete db_app"}, services); diff != "" {
		t.Errorf("local tree plan (-want +got):\n%s", diff)
	}
	// A broken local tree: problems with file:line, relative to the tree.
	if err := os.WriteFile(filepath.Join(dir, "cache/compose.yaml"), []byte("services:\n  app:\n    image: [x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err = h.ctl.Diff(ctx, DiffRequest{Dir: dir})
	if err != nil || len(d.Changeset.Problems) == 0 || !strings.HasPrefix(d.Changeset.Problems[0], "cache/compose.yaml:3") ||
		len(d.Changeset.Steps) != 0 {
		t.Errorf("broken tree: %+v %v", d, err)
	}
	if _, err := h.ctl.Diff(ctx, DiffRequest{Dir: dir, Revision: c1}); err == nil {
		t.Error("a revision and a directory at once")
	}
	// Diff writes nothing.
	if len(h.cluster.records) != 1 {
		t.Errorf("diff wrote records: %+v", h.cluster.records)
	}
}

// Suspended, a rollout in flight is still finished (it is no new sync),
// and nothing newer is deployed.
func TestSyncSuspendedFinishesARolloutInFlight(t *testing.T) {
	h := newHarness(t)
	h.clock.onWait = func() { h.cluster.orchestrate() }
	h.repo.commit("one", map[string]string{"web/compose.yaml": stack("app:1", 1)})
	h.sync(t)
	two := h.repo.commit("two", map[string]string{"web/compose.yaml": stack("app:2", 1)})
	ctx, cancel := context.WithCancel(context.Background())
	h.clock.onWait = cancel
	if _, err := h.ctl.Sync(ctx, api.TriggerPoll); !errors.Is(err, context.Canceled) {
		t.Fatalf("cut short: %v", err)
	}
	h.cluster.sync.Suspended = true
	h.repo.commit("three", map[string]string{"web/compose.yaml": stack("app:3", 1)})
	h.clock.onWait = func() { h.cluster.orchestrate() }
	rec, err := h.ctl.Sync(context.Background(), api.TriggerPoll)
	if err != nil || rec.Revision != two || rec.Result != api.SyncSynced {
		t.Fatalf("record %+v %v", rec, err)
	}
	if st := h.cluster.sync; st.InFlight != nil || st.Revision != two || h.cluster.image("web_app") != "app:2" {
		t.Errorf("state %+v, image %s", st, h.cluster.image("web_app"))
	}
	if rec, err := h.ctl.Sync(context.Background(), api.TriggerPoll); err != nil || rec.ID != "" {
		t.Errorf("suspended sync deployed: %+v %v", rec, err)
	}
}

// BenchmarkSyncNothingToHeal is what self-heal costs each poll when
// nothing drifted: fetch (ls-remote), materialize, load and plan 20
// stacks. go test ./reconcile -run '^$' -bench SyncNothingToHeal
func BenchmarkSyncNothingToHeal(b *testing.B) {
	h := newHarness(b)
	h.clock.onWait = func() { h.cluster.orchestrate() }
	files := map[string]string{}
	for i := range 20 {
		files[fmt.Sprintf("s%02d/compose.yaml", i)] = stack(fmt.Sprintf("app:%d", i), 2)
	}
	h.repo.commit("twenty stacks", files)
	h.sync(b)
	for b.Loop() {
		if rec := h.sync(b); rec.ID != "" {
			b.Fatalf("healed something: %+v", rec)
		}
	}
}
