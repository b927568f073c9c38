package dispatcher_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/gitorc/gitorc/cluster/store"
)

// netEnv is env with a network plan: network shop_public with service
// shop_api (vip, healthcheck) on it, and network shop_other with service
// shop_other; nodes w1 and w2 are stored with subnets, so that they are
// each other's peers once they said their WireGuard keys.
func netEnv(t *testing.T) *env {
	e := newEnv(t, envOptions{})
	e.create(
		&api.Node{Meta: api.Meta{ID: "w1"}, Spec: api.NodeSpec{Role: api.RoleWorker}, Subnet: "10.64.1.0/24"},
		&api.Node{Meta: api.Meta{ID: "w2"}, Spec: api.NodeSpec{Role: api.RoleWorker}, Subnet: "10.64.2.0/24",
			Description: api.NodeDescription{Hostname: "w2", WireGuard: &api.WireGuardInfo{PublicKey: "k2", Port: 51820}},
			Status:      api.NodeStatus{State: api.NodeDown, Addr: "192.0.2.2"}},
		&api.Network{Meta: api.Meta{ID: "nw-public"}, Spec: api.NetworkSpec{Name: "shop_public", Stack: "shop"}},
		&api.Network{Meta: api.Meta{ID: "nw-other"}, Spec: api.NetworkSpec{Name: "shop_other", Stack: "shop"}},
		&api.Service{Meta: api.Meta{ID: "sv-api"}, Spec: api.ServiceSpec{Name: "shop_api", Stack: "shop",
			Networks: []api.NetworkAttachment{{Target: "shop_public"}}}, Endpoint: &api.Endpoint{VIP: "10.96.0.2"}},
		&api.Service{Meta: api.Meta{ID: "sv-other"}, Spec: api.ServiceSpec{Name: "shop_other", Stack: "shop",
			Networks: []api.NetworkAttachment{{Target: "shop_other"}}}, Endpoint: &api.Endpoint{VIP: "10.96.0.3"}},
	)
	return e
}

// apiTask is a task of shop_api on node with addr, running, its
// healthcheck still starting.
func apiTask(id, node, addr string) *api.Task {
	t := newTask(id, node)
	t.ServiceID, t.ServiceName, t.Addr = "sv-api", "shop_api", addr
	t.Spec.Container.Healthcheck = &api.Healthcheck{Test: []string{"CMD", "true"}}
	t.Status.State, t.Status.Health = api.TaskRunning, api.HealthStarting
	return t
}

// connect opens w's raw session, saying its WireGuard key.
func (e *env) connect(nodeID string) *inbox {
	e.t.Helper()
	stream, _, err := e.rawSessionAs(clientTLS(e.t, e.root, e.cert(nodeID, api.RoleWorker)), api.NodeDescription{
		Hostname: nodeID, Platform: api.Platform{OS: "linux", Architecture: "amd64"},
		WireGuard: &api.WireGuardInfo{PublicKey: "k-" + nodeID, Port: 51820}})
	if err != nil {
		e.t.Fatal(err)
	}
	return newInbox(e.t, stream)
}

// change updates one stored object of type T.
func change[T any, P interface {
	*T
	api.Object
}](e *env, id string, fn func(P)) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if _, err := e.store.Update(ctx, func(tx store.Tx) error {
		o, err := store.Get[T, P](tx, id)
		if err != nil {
			return err
		}
		fn(o)
		return tx.Update(o)
	}); err != nil {
		e.t.Fatal(err)
	}
}

func backendsOf(v *api.NetView, svcID string) []string {
	for _, s := range v.Services {
		if s.ID == svcID {
			var out []string
			for _, b := range s.Backends {
				out = append(out, b.TaskID)
			}
			return out
		}
	}
	return nil
}

func taskIDsOf(v *api.NetView) []string {
	var out []string
	for _, t := range v.Tasks {
		out = append(out, t.ID)
	}
	return out
}

// A session's first message after the acknowledgement is the node's
// view; a store change that assigns the node a task sends the view with
// the task before the assignment set with it.
func TestSessionSendsViewBeforeAssignments(t *testing.T) {
	e := netEnv(t)
	e.create(apiTask("t1", "w1", "10.64.1.2/24"))
	msgs := e.connect("w1")

	v := msgs.next().Network
	if v == nil {
		t.Fatal("first message is not a network view")
	}
	if v.NodeID != "w1" || v.Subnet != "10.64.1.0/24" || !slices.Equal(taskIDsOf(v), []string{"t1"}) {
		t.Errorf("view = %+v; want node w1, subnet 10.64.1.0/24, task t1", v)
	}
	if len(v.Peers) != 1 || v.Peers[0].NodeID != "w2" || v.Peers[0].Endpoint != "192.0.2.2:51820" {
		t.Errorf("peers = %+v, want w2 at 192.0.2.2:51820 (down nodes stay peers)", v.Peers)
	}
	if len(v.Networks) != 1 || v.Networks[0].ID != "nw-public" || !slices.Equal(v.Networks[0].Members, []string{"10.64.1.2"}) {
		t.Errorf("networks = %+v, want shop_public with t1's address", v.Networks)
	}
	if a := msgs.next().Assignments; a == nil || len(a.Tasks) != 1 {
		t.Fatalf("second message = %+v, want the assignment set with t1", a)
	}

	e.create(apiTask("t2", "w1", "10.64.1.3/24"))
	m := msgs.next()
	if m.Network == nil || !slices.Equal(taskIDsOf(m.Network), []string{"t1", "t2"}) {
		t.Fatalf("after t2 was assigned, first message = %+v; want the view with t2", m)
	}
	if m := msgs.next(); m.Assignments == nil || len(m.Assignments.Tasks) != 2 {
		t.Fatalf("then %+v; want the assignment set with t2", m)
	}
}

// A task that passes its healthcheck becomes a backend of its service,
// in a new view.
func TestHealthyTaskBecomesBackend(t *testing.T) {
	e := netEnv(t)
	e.create(apiTask("t1", "w1", "10.64.1.2/24"), apiTask("t2", "w2", "10.64.2.2/24"))
	msgs := e.connect("w1")
	if v := msgs.nextView(); len(backendsOf(v, "sv-api")) != 0 {
		t.Fatalf("backends %v before any task is healthy", backendsOf(v, "sv-api"))
	}
	change(e, "t2", func(t *api.Task) { t.Status.Health = api.HealthHealthy })
	v := msgs.nextView()
	if got := backendsOf(v, "sv-api"); !slices.Equal(got, []string{"t2"}) {
		t.Errorf("backends = %v, want [t2]", got)
	}
}

// Changes that leave the node's view as it is send nothing and build no
// index: another node's heartbeat (a status write that leaves its peer
// entry alone), a change of a service on a network the node is not on,
// and of that service's task. The next view the node gets is the one of
// the next change that matters.
func TestUnrelatedChangesSendNoView(t *testing.T) {
	e := netEnv(t)
	e.create(apiTask("t1", "w1", "10.64.1.2/24"), apiTask("t2", "w2", "10.64.2.2/24"))
	other := newTask("t-other", "w2")
	other.ServiceID, other.Addr = "sv-other", "10.64.2.9/24"
	e.create(other)
	msgs := e.connect("w1")
	msgs.nextView()
	msgs.next() // the assignment set
	builds := e.disp.NetIndexBuilds()

	change(e, "w2", func(n *api.Node) {
		n.Status.State, n.Status.LastHeartbeat = api.NodeReady, e.clock.Now()
	})
	change(e, "sv-other", func(s *api.Service) { s.Spec.Labels = map[string]string{"tier": "other"} })
	change(e, "t-other", func(t *api.Task) { t.Status.State = api.TaskRunning })
	change(e, "t2", func(t *api.Task) { t.Status.Health = api.HealthHealthy }) // this one matters

	m := msgs.next()
	if m.Network == nil || !slices.Equal(backendsOf(m.Network, "sv-api"), []string{"t2"}) {
		t.Fatalf("next message = %+v; want the view with t2 as a backend, and no view before it", m)
	}
	if got := e.disp.NetIndexBuilds() - builds; got != 1 {
		t.Errorf("%d indexes built for the changes, want 1 (only t2's matters)", got)
	}
}

// Two sessions that both need the view of a store state share one index
// build.
func TestSessionsShareIndexBuilds(t *testing.T) {
	e := netEnv(t)
	e.create(apiTask("t1", "w1", "10.64.1.2/24"), apiTask("t2", "w2", "10.64.2.2/24"))
	w1 := e.connect("w1")
	w1.nextView()
	w2 := e.connect("w2")
	w2.nextView()
	// w2's hello wrote its key: w1 gets it as a peer.
	if v := w1.nextView(); len(v.Peers) != 1 || v.Peers[0].PublicKey != "k-w2" || v.Peers[0].Endpoint != "127.0.0.1:51820" {
		t.Fatalf("w1's peers = %+v, want w2 with its key at 127.0.0.1:51820", v.Peers)
	}
	builds := e.disp.NetIndexBuilds()

	change(e, "t1", func(t *api.Task) { t.Status.Health = api.HealthHealthy })
	for name, in := range map[string]*inbox{"w1": w1, "w2": w2} {
		if got := backendsOf(in.nextView(), "sv-api"); !slices.Equal(got, []string{"t1"}) {
			t.Errorf("%s: backends = %v, want [t1]", name, got)
		}
	}
	if got := e.disp.NetIndexBuilds() - builds; got != 1 {
		t.Errorf("%d indexes built for one change seen by two sessions, want 1", got)
	}
}

// While views are paced, a worker that reconnects holding a view
// (Hello.HasView) gets its assignment set at once and its first view
// within the pace interval; a worker without one gets its view first.
func TestReconnectingWorkerGetsItsFirstViewPaced(t *testing.T) {
	e := netEnv(t)
	e.create(apiTask("t1", "w1", "10.64.1.2/24"))
	e.disp.ObserveViewCost(time.Second) // one session: an interval of seconds
	desc := func(id string) api.NodeDescription {
		return api.NodeDescription{Hostname: id, Platform: api.Platform{OS: "linux", Architecture: "amd64"}}
	}
	stream, _, err := e.rawSessionWith(clientTLS(t, e.root, e.cert("w1", api.RoleWorker)),
		&wire.Hello{Description: desc("w1"), Deltas: true, HasView: true})
	if err != nil {
		t.Fatal(err)
	}
	w1 := newInbox(t, stream)
	if m := w1.next(); m.Assignments == nil || len(m.Assignments.Tasks) != 1 {
		t.Fatalf("a reconnecting worker's first message = %+v, want its assignment set (its view paced)", m)
	}
	e.clock.Advance(time.Minute) // past any interval (at most maxViewInterval)
	if v := w1.nextView(); !slices.Equal(taskIDsOf(v), []string{"t1"}) {
		t.Errorf("the paced first view has tasks %v, want [t1]", taskIDsOf(v))
	}

	stream, _, err = e.rawSessionWith(clientTLS(t, e.root, e.cert("w2", api.RoleWorker)), &wire.Hello{Description: desc("w2"), Deltas: true})
	if err != nil {
		t.Fatal(err)
	}
	if m := newInbox(t, stream).next(); m.Network == nil {
		t.Errorf("a new worker's first message = %+v, want its view", m)
	}
}
