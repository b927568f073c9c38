package session

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/google/go-cmp/cmp"
)

type nopAgent struct{}

func (nopAgent) Assign([]agent.Assignment) {}

func TestAssignmentsCarryEachTasksFiles(t *testing.T) {
	web := &api.Task{Meta: api.Meta{ID: "web"}}
	web.Spec.Container.Secrets = []api.FileRef{{Name: "pw"}, {Name: "gone"}}
	web.Spec.Container.Configs = []api.FileRef{{Name: "nginx.conf"}}
	job := &api.Task{Meta: api.Meta{ID: "job"}}
	set := &wire.AssignmentSet{Tasks: []*api.Task{web, job},
		Secrets: []wire.SecretFile{{Name: "pw", Data: wire.Plaintext("s3cret")}, {Name: "other", Data: wire.Plaintext("x")}},
		Configs: []wire.ConfigFile{{Name: "nginx.conf", Data: []byte("server {}")}}}
	got := Assignments(set)
	want := []agent.Assignment{ // by task ID
		{Task: job},
		{Task: web, Files: agent.Files{Secrets: map[string]api.SecretBytes{"pw": api.SecretBytes("s3cret")},
			Configs: map[string][]byte{"nginx.conf": []byte("server {}")}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("assignments (-want +got):\n%s", diff)
	}
}

func TestReportKeepsLatestForwardStatus(t *testing.T) {
	if _, err := New(Config{Managers: []string{"127.0.0.1:1"}, TLS: nil, Agent: nopAgent{}}); err == nil {
		t.Fatal("config without TLS accepted")
	}
	c, err := New(Config{Managers: []string{"127.0.0.1:1"}, TLS: testTLS(), Agent: nopAgent{}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	_ = c.ReportTaskStatus(ctx, "t", api.TaskStatus{State: api.TaskRunning, Timestamp: now})
	_ = c.ReportTaskStatus(ctx, "t", api.TaskStatus{State: api.TaskStarting, Timestamp: now.Add(time.Second)})
	if st := c.latest["t"]; st.State != api.TaskRunning {
		t.Errorf("latest = %s, want running (a backward report is dropped)", st.State)
	}
	_ = c.ReportTaskStatus(ctx, "t", api.TaskStatus{State: api.TaskComplete, Timestamp: now.Add(2 * time.Second)})
	c.forget([]agent.Assignment{{Task: &api.Task{Meta: api.Meta{ID: "t"}}}})
	if st := c.latest["t"]; st.State != api.TaskComplete || !c.unsent["t"] {
		t.Errorf("latest = %s (unsent %v), want complete, unsent", st.State, c.unsent["t"])
	}
	c.forget(nil)
	if len(c.latest) != 0 || len(c.unsent) != 0 {
		t.Errorf("statuses of unassigned tasks kept: %v", c.latest)
	}
}

func TestBackoffDoublesUpToMax(t *testing.T) {
	c, err := New(Config{Managers: []string{"x:1"}, TLS: testTLS(), Agent: nopAgent{},
		MinBackoff: time.Second, MaxBackoff: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var got []time.Duration
	for i := range 5 {
		got = append(got, c.backoff(i))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backoff (-want +got):\n%s", diff)
	}
}

// The wait before a session is tried again is spread between half the
// backoff and the whole of it, so that the workers one leader's end cut
// off at once do not all dial the next at the same instant.
func TestReconnectWaitIsJittered(t *testing.T) {
	seen := map[time.Duration]bool{}
	for range 200 {
		w := jittered(time.Second)
		if w < time.Second/2 || w > time.Second {
			t.Fatalf("wait %s out of [500ms, 1s]", w)
		}
		seen[w] = true
	}
	if len(seen) < 2 {
		t.Errorf("200 waits, %d distinct: no jitter", len(seen))
	}
	if jittered(0) != 0 {
		t.Error("a zero backoff became a wait")
	}
}

const waitLong = 15 * time.Second // a hang guard, never a timing assertion

// waitFor polls cond until it holds or the hang guard trips.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not a wait for a condition
	}
}

// fakeManager is a leader that acknowledges a hello, then sends what the
// test gives it, over mutual TLS on 127.0.0.1.
type fakeManager struct {
	t    *testing.T
	addr string
	root *ca.RootCA
	out  chan *wire.ManagerMessage
	// statuses, when set, receives the status batches the worker sends.
	statuses chan *wire.StatusBatch
}

func newFakeManager(t *testing.T) *fakeManager {
	t.Helper()
	root, err := ca.NewRootCA(ca.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeManager{t: t, root: root, out: make(chan *wire.ManagerMessage)}
	srvTLS, err := ca.TLSConfig{CA: root.Certificate(), Cert: m.cert("m1", api.RoleManager)}.Server()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.addr = ln.Addr().String()
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(srvTLS)))
	wire.Register(srv, m)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return m
}

func (m *fakeManager) cert(nodeID string, role api.NodeRole) *ca.NodeCert {
	m.t.Helper()
	csr, key, err := ca.NewCSR(nodeID)
	if err != nil {
		m.t.Fatal(err)
	}
	certPEM, err := m.root.Issue(csr, nodeID, role)
	if err != nil {
		m.t.Fatal(err)
	}
	nc, err := ca.LoadNodeCert(certPEM, key, m.root.Certificate())
	if err != nil {
		m.t.Fatal(err)
	}
	return nc
}

// clientTLS is worker w1's TLS config.
func (m *fakeManager) clientTLS() *tls.Config {
	m.t.Helper()
	cfg, err := ca.TLSConfig{CA: m.root.Certificate(), Cert: m.cert("w1", api.RoleWorker), PeerRoles: []api.NodeRole{api.RoleManager}}.Client()
	if err != nil {
		m.t.Fatal(err)
	}
	return cfg
}

// Session serves the worker (wire.Server).
func (m *fakeManager) Session(stream wire.SessionStream) error {
	if _, err := stream.Recv(); err != nil { // the hello
		return err
	}
	if err := stream.Send(&wire.ManagerMessage{Session: &wire.Session{NodeID: "w1", HeartbeatPeriod: time.Hour}}); err != nil {
		return err
	}
	go func() { // heartbeats ignored, statuses to m.statuses
		for {
			msg, err := stream.Recv()
			if err != nil {
				return
			}
			if msg.Status != nil && m.statuses != nil {
				m.statuses <- msg.Status
			}
		}
	}()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case msg := <-m.out:
			if err := stream.Send(msg); err != nil {
				return err
			}
		}
	}
}

// send hands msg to the worker's session.
func (m *fakeManager) send(msg *wire.ManagerMessage) {
	m.t.Helper()
	select {
	case m.out <- msg:
	case <-time.After(waitLong):
		m.t.Fatal("timed out waiting for the worker's session")
	}
}

// view is a network view labelled by its subnet.
func view(label string) *wire.ManagerMessage {
	return &wire.ManagerMessage{Network: &api.NetView{NodeID: "w1", Subnet: label}}
}

// fakeNet records the views it is asked to apply (by label) and answers
// with reconfig.
type fakeNet struct {
	mu       sync.Mutex
	calls    []string
	reconfig func(ctx context.Context, v *api.NetView) error
}

func (f *fakeNet) Reconfig(ctx context.Context, v *api.NetView) error {
	f.mu.Lock()
	f.calls = append(f.calls, v.Subnet)
	f.mu.Unlock()
	if f.reconfig == nil {
		return nil
	}
	return f.reconfig(ctx, v)
}

func (f *fakeNet) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// recordingAgent records the assignment sets it is given.
type recordingAgent struct {
	mu   sync.Mutex
	sets [][]agent.Assignment
}

func (a *recordingAgent) Assign(as []agent.Assignment) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sets = append(a.sets, as)
}

func (a *recordingAgent) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.sets)
}

// fakeClock is a manual clock; its timers fire when Advance passes them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *fakeClock
	at   time.Time
	ch   chan time.Time
	done bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) agent.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	return t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.done:
		case !t.at.After(c.now):
			t.done = true
			t.ch <- c.now
		default:
			keep = append(keep, t)
		}
	}
	c.timers = keep
}

// pending reports whether a timer is set to fire at at.
func (c *fakeClock) pending(at time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.timers {
		if !t.done && t.at.Equal(at) {
			return true
		}
	}
	return false
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }
func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

// syncBuffer is a log sink safe to read while the client writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// runClient runs a client of m with net as its NetConfigurer; stop ends
// Run and waits for it.
func runClient(t *testing.T, m *fakeManager, fn *fakeNet, clk agent.Clock, log *slog.Logger) (ag *recordingAgent, stop func()) {
	t.Helper()
	ag = &recordingAgent{}
	c, err := New(Config{Managers: []string{m.addr}, TLS: m.clientTLS(), Agent: ag, Network: fn, Clock: clk, Logger: log,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return ag, stop
}

// Views are applied in the order they came, and those that came while one
// was being applied are coalesced into the newest; assignment sets are
// handed to the agent meanwhile.
func TestViewsAppliedInOrderCoalesced(t *testing.T) {
	m := newFakeManager(t)
	gate := make(chan struct{})
	fn := &fakeNet{reconfig: func(ctx context.Context, v *api.NetView) error {
		if v.Subnet == "v1" {
			select {
			case <-gate:
			case <-ctx.Done():
			}
		}
		return nil
	}}
	ag, _ := runClient(t, m, fn, nil, nil)

	m.send(view("v1"))
	waitFor(t, "v1 being applied", func() bool { return slices.Equal(fn.called(), []string{"v1"}) })
	for _, l := range []string{"v2", "v3", "v4"} {
		m.send(view(l))
	}
	m.send(&wire.ManagerMessage{Assignments: &wire.AssignmentSet{Tasks: []*api.Task{{Meta: api.Meta{ID: "t1"}}}}})
	// The stream is read in order: once the set is assigned, v2 to v4
	// were received.
	waitFor(t, "the assignment set, while v1 is still being applied", func() bool { return ag.count() == 1 })
	close(gate)
	waitFor(t, "v4 applied", func() bool { return len(fn.called()) == 2 })
	if got := fn.called(); !slices.Equal(got, []string{"v1", "v4"}) {
		t.Errorf("applied %v, want [v1 v4] (v2 and v3 superseded)", got)
	}
}

// A Reconfig that never returns holds up neither assignment sets nor the
// end of Run, which cancels it and waits for it.
func TestSlowReconfigDoesNotBlockAssignments(t *testing.T) {
	m := newFakeManager(t)
	var returned atomic.Bool
	fn := &fakeNet{reconfig: func(ctx context.Context, v *api.NetView) error {
		defer returned.Store(true)
		<-ctx.Done()
		return ctx.Err()
	}}
	ag, stop := runClient(t, m, fn, nil, nil)
	m.send(view("v1"))
	waitFor(t, "v1 being applied", func() bool { return len(fn.called()) == 1 })
	for range 3 {
		m.send(&wire.ManagerMessage{Assignments: &wire.AssignmentSet{Tasks: []*api.Task{}}})
	}
	m.send(view("v2"))
	waitFor(t, "three assignment sets", func() bool { return ag.count() == 3 })
	stop()
	if !returned.Load() {
		t.Error("Run returned while Reconfig was still running")
	}
	if got := fn.called(); !slices.Equal(got, []string{"v1"}) {
		t.Errorf("applied %v, want only v1 (Run ended before v2)", got)
	}
}

// A view that fails is tried again after a backoff until it applies, with
// its error logged once; a newer view is applied at once, without
// waiting for the backoff.
func TestReconfigErrorsRetried(t *testing.T) {
	m := newFakeManager(t)
	clk := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	var logs syncBuffer
	var mu sync.Mutex
	failures := map[string]int{"v1": 2, "v2": 1 << 30} // v2 never applies
	fn := &fakeNet{reconfig: func(ctx context.Context, v *api.NetView) error {
		mu.Lock()
		defer mu.Unlock()
		if failures[v.Subnet] > 0 {
			failures[v.Subnet]--
			return errors.New("nft: table busy")
		}
		return nil
	}}
	runClient(t, m, fn, clk, slog.New(slog.NewTextHandler(&logs, nil)))

	m.send(view("v1"))
	waitFor(t, "v1 tried", func() bool { return len(fn.called()) == 1 })
	waitFor(t, "v1 applied on the third try", func() bool {
		clk.Advance(time.Second) // past any backoff
		return len(fn.called()) == 3
	})
	if n := strings.Count(logs.String(), "nft: table busy"); n != 1 {
		t.Errorf("error logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "applied after errors") {
		t.Errorf("recovery not logged:\n%s", logs.String())
	}

	m.send(view("v2"))
	waitFor(t, "v2 tried", func() bool { return len(fn.called()) == 4 })
	m.send(view("v3")) // the clock stands still: only a new view can wake the applier
	waitFor(t, "v3 applied", func() bool { return len(fn.called()) == 5 })
	if got := fn.called(); !slices.Equal(got, []string{"v1", "v1", "v1", "v2", "v3"}) {
		t.Errorf("applied %v, want v1 three times, v2, v3", got)
	}
}

// A status after a quiet spell is sent at once; statuses that follow
// within the status interval wait for it and go in one batch.
func TestStatusBatchesPaced(t *testing.T) {
	m := newFakeManager(t)
	m.statuses = make(chan *wire.StatusBatch, 16)
	clk := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	c, err := New(Config{Managers: []string{m.addr}, TLS: m.clientTLS(), Agent: nopAgent{}, Clock: clk, StatusInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	next := func() *wire.StatusBatch {
		t.Helper()
		select {
		case b := <-m.statuses:
			return b
		case <-time.After(waitLong):
			t.Fatal("no status batch")
			return nil
		}
	}
	ids := func(b *wire.StatusBatch) []string {
		var out []string
		for _, u := range b.Updates {
			out = append(out, u.TaskID)
		}
		slices.Sort(out)
		return out
	}
	_ = c.ReportTaskStatus(ctx, "a", api.TaskStatus{State: api.TaskRunning})
	if got := ids(next()); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("first batch = %v, want [a]", got)
	}
	sentAt := clk.Now()
	_ = c.ReportTaskStatus(ctx, "b", api.TaskStatus{State: api.TaskRunning})
	waitFor(t, "the client to wait for the status interval", func() bool { return clk.pending(sentAt.Add(50 * time.Millisecond)) })
	_ = c.ReportTaskStatus(ctx, "c", api.TaskStatus{State: api.TaskRunning})
	select {
	case b := <-m.statuses:
		t.Fatalf("batch %v sent within the status interval", ids(b))
	default:
	}
	clk.Advance(50 * time.Millisecond)
	if got := ids(next()); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("second batch = %v, want [b c]", got)
	}
}
