package dispatcher_test

import (
	"context"
	"crypto/tls"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/dispatcher"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

const waitLong = 60 * time.Second // a hang guard, never a timing assertion (15 s was exceeded on a loaded machine)

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

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) timer(d time.Duration) *fakeTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	return t
}

func (c *fakeClock) NewTimer(d time.Duration) dispatcher.Timer { return c.timer(d) }

// Advance moves the clock and fires the timers it passes.
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

// armed reports whether a timer is waiting for a time after now: the
// dispatcher's expiry loop has run its check and set its next one.
func (c *fakeClock) armed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.timers {
		if !t.done && t.at.After(c.now) {
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

// agentClock adapts a fakeClock to agent.Clock.
type agentClock struct{ *fakeClock }

func (c agentClock) NewTimer(d time.Duration) agent.Timer { return c.timer(d) }

// fakeAgent records the assignment sets it is given, and the registry
// logins.
type fakeAgent struct {
	mu         sync.Mutex
	sets       [][]agent.Assignment
	registries map[string]api.RegistryLogin
}

func (a *fakeAgent) SetRegistryLogins(m map[string]api.RegistryLogin) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.registries = m
}

func (a *fakeAgent) logins() map[string]api.RegistryLogin {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.registries
}

func (a *fakeAgent) Assign(as []agent.Assignment) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sets = append(a.sets, as)
}

func (a *fakeAgent) last() []agent.Assignment {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.sets) == 0 {
		return nil
	}
	return a.sets[len(a.sets)-1]
}

// env is a 1-manager store, a CA, and a dispatcher serving gRPC over mTLS
// on 127.0.0.1.
type env struct {
	t     *testing.T
	store *store.Store
	root  *ca.RootCA
	clock *fakeClock
	disp  *dispatcher.Dispatcher
	addr  string
}

type envOptions struct {
	leadership dispatcher.Leadership // default: the store
	root       *ca.RootCA            // default: a new CA
	store      *store.Store          // default: a new 1-manager store
	metrics    *dispatcher.Metrics   // default: none
	period     time.Duration         // heartbeat period; default: the dispatcher's
	missed     int                   // tolerance; default: the dispatcher's
	gracePer   time.Duration         // election grace per inherited node; default: the dispatcher's
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, clock: newFakeClock(), root: o.root, store: o.store}
	if e.store == nil {
		e.store = storetest.New(t, storetest.Options{Managers: 1}).Store(0)
	}
	if e.root == nil {
		e.root = newCA(t)
	}
	d, err := dispatcher.New(dispatcher.Config{Store: e.store, Leadership: o.leadership, Clock: e.clock, Metrics: o.metrics,
		HeartbeatPeriod: o.period, MissedHeartbeats: o.missed, ElectionGracePerNode: o.gracePer})
	if err != nil {
		t.Fatal(err)
	}
	e.disp = d
	srvTLS, err := ca.TLSConfig{CA: e.root.Certificate(), Cert: e.cert("manager-1", api.RoleManager)}.Server()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(srvTLS)))
	d.Register(srv)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	go func() {
		defer wg.Done()
		if err := d.Run(ctx); err != nil {
			t.Errorf("dispatcher run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		srv.Stop()
		wg.Wait()
	})
	// A session that came before Run started would be refused as "not
	// running" (it happened under load).
	waitFor(t, "the dispatcher running", d.Running)
	return e
}

func newCA(t *testing.T) *ca.RootCA {
	t.Helper()
	root, err := ca.NewRootCA(ca.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func (e *env) cert(nodeID string, role api.NodeRole) *ca.NodeCert {
	return issue(e.t, e.root, nodeID, role)
}

func issue(t *testing.T, root *ca.RootCA, nodeID string, role api.NodeRole) *ca.NodeCert {
	t.Helper()
	csr, key, err := ca.NewCSR(nodeID)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := root.Issue(csr, nodeID, role)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := ca.LoadNodeCert(certPEM, key, root.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

// clientTLS is a worker's TLS config: its certificate, the given CA
// pinned, managers only.
func clientTLS(t *testing.T, root *ca.RootCA, cert *ca.NodeCert) *tls.Config {
	t.Helper()
	cfg, err := ca.TLSConfig{CA: root.Certificate(), Cert: cert, PeerRoles: []api.NodeRole{api.RoleManager}}.Client()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// rawSession opens a session by hand, to drive the protocol directly.
func (e *env) rawSession(tlsCfg *tls.Config, hostname string) (wire.SessionClient, *wire.Session, error) {
	e.t.Helper()
	return e.rawSessionAs(tlsCfg, api.NodeDescription{Hostname: hostname,
		Platform: api.Platform{OS: "linux", Architecture: "amd64"}})
}

// rawSessionAs is rawSession with the node's whole description.
func (e *env) rawSessionAs(tlsCfg *tls.Config, desc api.NodeDescription) (wire.SessionClient, *wire.Session, error) {
	e.t.Helper()
	return e.rawSessionWith(tlsCfg, &wire.Hello{Description: desc})
}

// rawSessionWith is rawSession with the whole hello.
func (e *env) rawSessionWith(tlsCfg *tls.Config, hello *wire.Hello) (wire.SessionClient, *wire.Session, error) {
	e.t.Helper()
	cc, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(func() { cancel(); cc.Close() })
	stream, err := wire.OpenSession(ctx, cc)
	if err != nil {
		return nil, nil, err
	}
	if err := stream.Send(&wire.WorkerMessage{Hello: hello}); err != nil {
		_, err = stream.Recv()
		return nil, nil, err
	}
	m, err := stream.Recv()
	if err != nil {
		return nil, nil, err
	}
	return stream, m.Session, nil
}

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

func (e *env) node(id string) *api.Node {
	var n *api.Node
	_ = e.store.View(func(tx store.ReadTx) (err error) {
		n, err = store.Get[api.Node](tx, id)
		return err
	})
	return n
}

func (e *env) task(id string) *api.Task {
	var t *api.Task
	_ = e.store.View(func(tx store.ReadTx) (err error) {
		t, err = store.Get[api.Task](tx, id)
		return err
	})
	return t
}

func (e *env) nodeState(id string) api.NodeState {
	if n := e.node(id); n != nil {
		return n.Status.State
	}
	return api.NodeUnknown
}

func (e *env) create(objs ...api.Object) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if _, err := e.store.Update(ctx, func(tx store.Tx) error {
		for _, o := range objs {
			if err := tx.Create(o); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
}

// newTask is a task placed on node, assigned, desired running.
func newTask(id, node string, secrets ...string) *api.Task {
	t := &api.Task{Meta: api.Meta{ID: id}, ServiceID: "svc", ServiceName: "web", Slot: 1, NodeID: node,
		DesiredState: api.TaskRunning, Status: api.TaskStatus{State: api.TaskAssigned,
			Timestamp: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}}
	t.Spec.Container.Image = "busybox"
	for _, s := range secrets {
		t.Spec.Container.Secrets = append(t.Spec.Container.Secrets, api.FileRef{Name: s, Target: "/run/secrets/" + s})
	}
	return t
}

func taskIDs(as []agent.Assignment) []string {
	var ids []string
	for _, a := range as {
		ids = append(ids, a.Task.ID)
	}
	sort.Strings(ids)
	return ids
}

// inbox reads a raw session's manager messages in the background.
type inbox struct {
	t  *testing.T
	ch chan *wire.ManagerMessage
}

func newInbox(t *testing.T, stream wire.SessionClient) *inbox {
	t.Helper()
	in := &inbox{t: t, ch: make(chan *wire.ManagerMessage)}
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		defer close(in.ch)
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			select {
			case in.ch <- m:
			case <-done:
				return
			}
		}
	}()
	return in
}

// next is the next message; it fails the test if the stream ends or the
// hang guard trips.
func (in *inbox) next() *wire.ManagerMessage {
	in.t.Helper()
	select {
	case m, ok := <-in.ch:
		if !ok {
			in.t.Fatal("session stream ended")
		}
		if err := m.Validate(); err != nil {
			in.t.Fatal(err)
		}
		return m
	case <-time.After(waitLong):
		in.t.Fatal("timed out waiting for a manager message")
	}
	return nil
}

// nextView is the next network view, skipping assignment sets.
func (in *inbox) nextView() *api.NetView {
	in.t.Helper()
	for {
		if m := in.next(); m.Network != nil {
			return m.Network
		}
	}
}
