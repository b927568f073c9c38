package dispatcher_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/agent/session"
	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/status"
)

// startWorker runs a session.Client for nodeID with a frozen clock (it
// heartbeats only when the test advances it).
func (e *env) startWorker(nodeID string, managers ...string) (*session.Client, *fakeAgent, *fakeClock) {
	e.t.Helper()
	if len(managers) == 0 {
		managers = []string{e.addr}
	}
	ag, clk := &fakeAgent{}, newFakeClock()
	c, err := session.New(session.Config{Managers: managers, TLS: clientTLS(e.t, e.root, e.cert(nodeID, api.RoleWorker)),
		Agent: ag, Registries: ag, Clock: agentClock{clk}, Description: api.NodeDescription{Hostname: nodeID + ".example",
			Platform: api.Platform{OS: "linux", Architecture: "amd64"}},
		// The manual clock never passes a pacing interval by itself:
		// every status goes at once (the pacing has its own test).
		StatusInterval: -1})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	e.t.Cleanup(func() { cancel(); <-done })
	return c, ag, clk
}

// A worker joins, receives its task with the secret payload, and its
// status reports reach the store.
func TestWorkerJoinAssignAndReport(t *testing.T) {
	e := newEnv(t, envOptions{})
	c, ag, _ := e.startWorker("w1")

	waitFor(t, "node w1 ready", func() bool { return e.nodeState("w1") == api.NodeReady })
	n := e.node("w1")
	if n.Description.Hostname != "w1.example" || n.Spec.Role != api.RoleWorker || n.Status.Addr != "127.0.0.1" {
		t.Errorf("node = %+v; want hostname w1.example, role worker, addr 127.0.0.1", n)
	}
	waitFor(t, "empty assignment set", func() bool { return ag.last() != nil && len(ag.last()) == 0 })
	if c.NodeID() != "w1" { // the session acknowledgement precedes the first set
		t.Errorf("client NodeID = %q, want w1", c.NodeID())
	}

	e.create(&api.Secret{Spec: api.SecretSpec{Name: "db_pw", Data: api.SecretBytes("hunter2")}},
		&api.Config{Spec: api.ConfigSpec{Name: "unused", Data: []byte("x")}},
		newTask("t1", "w1", "db_pw"),
		newTask("t-other", "w2", "db_pw"))
	waitFor(t, "task t1 assigned to w1", func() bool { return slices.Equal(taskIDs(ag.last()), []string{"t1"}) })
	got := ag.last()[0]
	if s, ok := got.Files.Secrets["db_pw"]; !ok || string(s.Reveal()) != "hunter2" {
		t.Errorf("secret db_pw = %q (present %v), want hunter2", s.Reveal(), ok)
	}
	if len(got.Files.Configs) != 0 {
		t.Errorf("configs %v, want none (no task refers to them)", got.Files.Configs)
	}

	// A status report reaches the store.
	running := api.TaskStatus{State: api.TaskRunning, Timestamp: e.clock.Now().Add(time.Second), Message: "started"}
	if err := c.ReportTaskStatus(context.Background(), "t1", running); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "t1 running in the store", func() bool { return e.task("t1").Status.State == api.TaskRunning })
	if msg := e.task("t1").Status.Message; msg != "started" {
		t.Errorf("message = %q, want started", msg)
	}

	// A task that finished and is meant to stay finished leaves the set.
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if _, err := e.store.Update(ctx, func(tx store.Tx) error {
		tk, err := store.Get[api.Task](tx, "t1")
		if err != nil {
			return err
		}
		tk.DesiredState = api.TaskShutdown
		tk.Status.State = api.TaskShutdown
		return tx.Update(tk)
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "t1 unassigned", func() bool { return ag.last() != nil && len(ag.last()) == 0 })
}

// The store keeps only forward moves: a state that goes back, a stale
// timestamp, and a report about another node's task are all ignored.
func TestStatusOnlyMovesForward(t *testing.T) {
	e := newEnv(t, envOptions{})
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, id := range []string{"back", "stale", "fwd", "health"} {
		tk := newTask(id, "w1")
		tk.Status = api.TaskStatus{State: api.TaskRunning, Timestamp: base.Add(10 * time.Second)}
		e.create(tk)
	}
	e.create(newTask("theirs", "w2"))

	stream, _, err := e.rawSession(clientTLS(t, e.root, e.cert("w1", api.RoleWorker)), "w1")
	if err != nil {
		t.Fatal(err)
	}
	later := base.Add(20 * time.Second)
	batch := []wire.TaskStatusUpdate{
		{TaskID: "back", Status: api.TaskStatus{State: api.TaskPreparing, Timestamp: later}},
		{TaskID: "stale", Status: api.TaskStatus{State: api.TaskRunning, Timestamp: base, Message: "stale"}},
		{TaskID: "theirs", Status: api.TaskStatus{State: api.TaskFailed, Timestamp: later}},
		{TaskID: "missing", Status: api.TaskStatus{State: api.TaskFailed, Timestamp: later}},
		{TaskID: "health", Status: api.TaskStatus{State: api.TaskRunning, Timestamp: later, Health: api.HealthHealthy}},
		{TaskID: "fwd", Status: api.TaskStatus{State: api.TaskComplete, Timestamp: later}},
	}
	if err := stream.Send(&wire.WorkerMessage{Status: &wire.StatusBatch{Updates: batch}}); err != nil {
		t.Fatal(err)
	}
	// The queue is written in one transaction per batch, so once "fwd"
	// moved, every other update of the batch was decided.
	waitFor(t, "fwd complete", func() bool { return e.task("fwd").Status.State == api.TaskComplete })
	if st := e.task("back").Status; st.State != api.TaskRunning {
		t.Errorf("back: state %s, want running (backward move ignored)", st.State)
	}
	if st := e.task("stale").Status; st.Message == "stale" || !st.Timestamp.Equal(base.Add(10*time.Second)) {
		t.Errorf("stale: status %+v, want unchanged", st)
	}
	if st := e.task("theirs").Status; st.State != api.TaskAssigned {
		t.Errorf("theirs: state %s, want assigned (w1 may not report w2's task)", st.State)
	}
	if st := e.task("health").Status; st.Health != api.HealthHealthy {
		t.Errorf("health: %+v, want the newer same-state status", st)
	}
}

// A node that misses three heartbeat periods is down, its last heartbeat
// (here, its hello) recorded; a heartbeat brings it back.
func TestMissedHeartbeatsMarkNodeDown(t *testing.T) {
	e := newEnv(t, envOptions{})
	stream, sess, err := e.rawSession(clientTLS(t, e.root, e.cert("w1", api.RoleWorker)), "w1")
	if err != nil {
		t.Fatal(err)
	}
	if sess.HeartbeatPeriod != dispatcher.DefaultHeartbeatPeriod || sess.NodeID != "w1" {
		t.Errorf("session = %+v; want node w1, period %s", sess, dispatcher.DefaultHeartbeatPeriod)
	}
	if e.nodeState("w1") != api.NodeReady {
		t.Fatalf("node w1 is %s after hello, want ready", e.nodeState("w1"))
	}
	hello := e.clock.Now() // the fake clock stands still until advanced
	// Silence: step the dispatcher's clock one period at a time.
	waitFor(t, "node w1 down", func() bool {
		e.clock.Advance(e.disp.HeartbeatPeriod())
		return e.nodeState("w1") == api.NodeDown
	})
	if n := e.node("w1"); n.Status.Message == "" || !n.Status.LastHeartbeat.Equal(hello) {
		t.Errorf("down node: %+v; want a message, and the last heartbeat at %s", n.Status, hello)
	}
	if err := stream.Send(&wire.WorkerMessage{Heartbeat: &wire.Heartbeat{}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node w1 ready again", func() bool { return e.nodeState("w1") == api.NodeReady })
}

// The node ID comes from the certificate: a worker cannot speak for
// another node, whatever it sends.
func TestCertificateIsIdentity(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.create(newTask("t-a", "node-a"))
	// node-b says it is host "node-a" and reports node-a's task.
	stream, sess, err := e.rawSession(clientTLS(t, e.root, e.cert("node-b", api.RoleWorker)), "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if sess.NodeID != "node-b" {
		t.Errorf("session node = %q, want node-b", sess.NodeID)
	}
	msgs := newInbox(t, stream)
	if v := msgs.next().Network; v == nil || v.NodeID != "node-b" {
		t.Errorf("node-b's first message is not its network view: %+v", v)
	}
	if m := msgs.next(); m.Assignments == nil || len(m.Assignments.Tasks) != 0 {
		t.Errorf("node-b got assignments %+v, want an empty set", m.Assignments)
	}
	e.create(newTask("t-b", "node-b"))
	if err := stream.Send(&wire.WorkerMessage{Status: &wire.StatusBatch{Updates: []wire.TaskStatusUpdate{
		{TaskID: "t-a", Status: api.TaskStatus{State: api.TaskFailed, Timestamp: e.clock.Now().Add(time.Hour)}},
		{TaskID: "t-b", Status: api.TaskStatus{State: api.TaskRunning, Timestamp: e.clock.Now().Add(time.Hour)}},
	}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "t-b running", func() bool { return e.task("t-b").Status.State == api.TaskRunning })
	if st := e.task("t-a").Status.State; st != api.TaskAssigned {
		t.Errorf("node-a's task is %s, want assigned: node-b must not update it", st)
	}
	if n := e.node("node-a"); n != nil {
		t.Errorf("node-a exists: %+v; only node-b connected", n)
	}
	if n := e.node("node-b"); n == nil || n.Description.Hostname != "node-a" {
		t.Errorf("node-b = %+v, want the node registered under its certificate's ID", n)
	}
}

// A certificate from another CA is refused, and nothing is registered.
func TestForeignCertificateRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	other := newCA(t)
	forged := issue(t, other, "w1", api.RoleWorker)
	// The client trusts the real CA (so the server passes its check), but
	// presents a certificate the server's CA did not issue.
	_, _, err := e.rawSession(clientTLS(t, e.root, forged), "w1")
	if err == nil {
		t.Fatal("session with a foreign certificate succeeded")
	}
	if n := e.node("w1"); n != nil {
		t.Errorf("node w1 registered: %+v", n)
	}
}

// notLeader makes a dispatcher behave as a follower of leaderAddr.
type notLeader struct{ leaderAddr string }

func (f notLeader) Leader() store.LeaderInfo {
	return store.LeaderInfo{ID: "m0", Addr: f.leaderAddr}
}

func (f notLeader) WatchLeader() (<-chan store.LeaderInfo, func()) {
	ch := make(chan store.LeaderInfo, 1)
	ch <- f.Leader()
	return ch, func() {}
}

// A follower answers with the leader's address and the worker follows it.
func TestFollowerRedirectsToLeader(t *testing.T) {
	leader := newEnv(t, envOptions{})
	follower := newEnv(t, envOptions{root: leader.root, store: leader.store, leadership: notLeader{leader.addr}})

	_, _, err := follower.rawSession(clientTLS(t, leader.root, leader.cert("w1", api.RoleWorker)), "w1")
	if addr, ok := wire.LeaderAddr(err); !ok || addr != leader.addr {
		t.Fatalf("follower answered %v; want a redirect to %s", err, leader.addr)
	}

	_, ag, _ := follower.startWorker("w2", follower.addr)
	waitFor(t, "w2 ready through the leader", func() bool { return leader.nodeState("w2") == api.NodeReady })
	waitFor(t, "w2 assignment set", func() bool { return ag.last() != nil })
}

func TestConfigValidate(t *testing.T) {
	s := storetest.New(t, storetest.Options{Managers: 1}).Store(0)
	for _, tc := range []struct {
		name string
		cfg  dispatcher.Config
		err  string // substring; empty: valid
	}{
		{name: "no store", cfg: dispatcher.Config{}, err: "store is required"},
		{name: "negative period", cfg: dispatcher.Config{Store: s, HeartbeatPeriod: -1}, err: "heartbeat period -1ns is below 100ms"},
		{name: "period too short", cfg: dispatcher.Config{Store: s, HeartbeatPeriod: 50 * time.Millisecond}, err: "heartbeat period 50ms is below 100ms"},
		{name: "tolerance of one beat", cfg: dispatcher.Config{Store: s, MissedHeartbeats: 1}, err: "missed heartbeats 1 is below 2"},
		{name: "negative tolerance", cfg: dispatcher.Config{Store: s, MissedHeartbeats: -3}, err: "missed heartbeats -3 is below 2"},
		{name: "defaults", cfg: dispatcher.Config{Store: s}},
		{name: "set", cfg: dispatcher.Config{Store: s, HeartbeatPeriod: time.Second, MissedHeartbeats: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := dispatcher.New(tc.cfg)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("New() = %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantP, wantN := tc.cfg.HeartbeatPeriod, tc.cfg.MissedHeartbeats
			if wantP == 0 {
				wantP, wantN = dispatcher.DefaultHeartbeatPeriod, dispatcher.DefaultMissedHeartbeats
			}
			if d.HeartbeatPeriod() != wantP || d.MissedHeartbeats() != wantN {
				t.Errorf("liveness %s x %d, want %s x %d", d.HeartbeatPeriod(), d.MissedHeartbeats(), wantP, wantN)
			}
		})
	}
}

// A node is down once it has been silent for longer than the tolerance
// (MissedHeartbeats periods), and at most a quarter period later: the
// leader looked for silent nodes once a period, so a node went down up
// to a whole period late (4 periods of silence instead of 3).
func TestDownSoonAfterTolerance(t *testing.T) {
	for _, missed := range []int{0, 4} { // the default (3), and a set one
		t.Run(fmt.Sprint(missed), func(t *testing.T) {
			const period = 4 * time.Second
			e := newEnv(t, envOptions{period: period, missed: missed})
			if _, _, err := e.rawSession(clientTLS(t, e.root, e.cert("w1", api.RoleWorker)), "w1"); err != nil {
				t.Fatal(err)
			}
			tolerance := time.Duration(e.disp.MissedHeartbeats()) * period
			waitFor(t, "the expiry check armed", e.clock.armed)
			// Silence, a quarter period at a time; each step waits for the
			// check it fired to finish (the next one is armed).
			for silent := period / 4; silent <= tolerance+period/4; silent += period / 4 {
				e.clock.Advance(period / 4)
				waitFor(t, "the expiry check armed", e.clock.armed)
				down := e.nodeState("w1") == api.NodeDown
				if silent <= tolerance && down {
					t.Fatalf("down after %s of silence, tolerance %s", silent, tolerance)
				}
				if silent > tolerance && !down {
					t.Fatalf("still %s after %s of silence, tolerance %s", e.nodeState("w1"), silent, tolerance)
				}
			}
			if n := e.node("w1"); !strings.Contains(n.Status.Message, tolerance.String()) {
				t.Errorf("down message %q does not say the tolerance %s", n.Status.Message, tolerance)
			}
		})
	}
}

// Two tasks of one node pinned to two versions of a secret (a rollout
// under way) each get their own content: the current one, and the kept
// earlier version; a version nobody keeps is not delivered.
func TestPinnedSecretVersions(t *testing.T) {
	e := newEnv(t, envOptions{})
	_, ag, _ := e.startWorker("w1")
	waitFor(t, "node w1 ready", func() bool { return e.nodeState("w1") == api.NodeReady })
	pinned := func(id, version string) *api.Task {
		tk := newTask(id, "w1", "db_pw")
		tk.Spec.Container.Secrets[0].Version = version
		return tk
	}
	e.create(&api.Secret{Spec: api.SecretSpec{Name: "db_pw", DataHash: "h2", Data: api.SecretBytes("new-pw")}},
		&api.Secret{Spec: api.SecretSpec{Name: api.VersionName("db_pw", "h1"), DataHash: "h1", Data: api.SecretBytes("old-pw"),
			Labels: map[string]string{api.LabelVersionOf: "db_pw"}}},
		pinned("t-new", "h2"), pinned("t-old", "h1"), pinned("t-gone", "h0"))
	waitFor(t, "three tasks assigned", func() bool { return len(ag.last()) == 3 })
	for _, a := range ag.last() {
		s, ok := a.Files.Secrets["db_pw"]
		want := map[string]string{"t-new": "new-pw", "t-old": "old-pw"}[a.Task.ID]
		if got := string(s.Reveal()); got != want || ok != (want != "") {
			t.Errorf("task %s got secret %q (present %v), want %q", a.Task.ID, got, ok, want)
		}
	}
}

// A node gets the registry logins of its tasks' images, and only those.
func TestRegistryLoginsDelivered(t *testing.T) {
	e := newEnv(t, envOptions{})
	_, ag, _ := e.startWorker("w1")
	waitFor(t, "node w1 ready", func() bool { return e.nodeState("w1") == api.NodeReady })
	login := func(host, user string) *api.Secret {
		spec, err := api.RegistrySecret(host, api.RegistryLogin{Username: user, Password: api.SecretBytes("pw-" + user)})
		if err != nil {
			t.Fatal(err)
		}
		return &api.Secret{Spec: spec}
	}
	tk := newTask("t1", "w1")
	tk.Spec.Container.Image = "registry.example.com:5000/team/app:1"
	other := newTask("t2", "w2")
	other.Spec.Container.Image = "other.example.com/app:1"
	e.create(login("registry.example.com:5000", "ci"), login("other.example.com", "ops"), tk, other)
	waitFor(t, "the login for t1's registry", func() bool {
		l, ok := ag.logins()["registry.example.com:5000"]
		return ok && l.Username == "ci" && string(l.Password.Reveal()) == "pw-ci"
	})
	if got := ag.logins(); len(got) != 1 {
		t.Errorf("w1 got logins for %d registries, want only its task's: %v", len(got), got)
	}
}

// A node whose reports overflow its status queue is not left with the
// dropped ones missing from the store: its session ends (ErrStatusesDropped),
// for the node to report every task again on its next one. The drop is
// counted in gitorc_dispatcher_statuses_dropped_total.
func TestDroppedStatusesEndTheSession(t *testing.T) {
	m := dispatcher.NewMetrics()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.Collectors()...)
	e := newEnv(t, envOptions{metrics: m})
	stream, _, err := e.rawSession(clientTLS(t, e.root, e.cert("w1", api.RoleWorker)), "w1")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var ups []wire.TaskStatusUpdate
	for i := range dispatcher.MaxQueuedPerNode + 1 { // one batch: added under one lock, one report too many
		ups = append(ups, wire.TaskStatusUpdate{TaskID: fmt.Sprintf("t%05d", i), Status: api.TaskStatus{State: api.TaskRunning, Timestamp: at}})
	}
	if err := stream.Send(&wire.WorkerMessage{Status: &wire.StatusBatch{Updates: ups}}); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				ended <- err
				return
			}
		}
	}()
	select {
	case err := <-ended:
		if st, _ := status.FromError(err); !strings.Contains(st.Message(), dispatcher.ErrStatusesDropped.Error()) {
			t.Fatalf("the session ended with %v, want %v", err, dispatcher.ErrStatusesDropped)
		}
	case <-time.After(time.Minute):
		t.Fatal("the session went on after dropping a status")
	}
	if n := counterValue(t, reg, "gitorc_dispatcher_statuses_dropped_total"); n != 1 {
		t.Errorf("gitorc_dispatcher_statuses_dropped_total is %v, want 1 (one report over the queue's size)", n)
	}
}
