package dispatcher

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// One batch of registrations is one store write: new nodes are created,
// a node registered twice takes both (the hello's description, then the
// later address), and a removed node is refused alone.
func TestRegisterBatchOneWrite(t *testing.T) {
	s := storetest.New(t, storetest.Options{Managers: 1}).Store(0)
	d, err := New(Config{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	gone := &api.Node{Meta: api.Meta{ID: "gone"}, Spec: api.NodeSpec{Role: api.RoleWorker}, RemovedAt: time.Now()}
	if _, err := s.Update(ctx, func(tx store.Tx) error { return tx.Create(gone) }); err != nil {
		t.Fatal(err)
	}
	reg := func(id string, desc *api.NodeDescription, addr string) *registration {
		return &registration{id: ca.Identity{NodeID: id, Role: api.RoleWorker}, desc: desc, addr: addr, done: make(chan error, 1)}
	}
	batch := []*registration{
		reg("a", &api.NodeDescription{Hostname: "host-a"}, "10.0.0.1"),
		reg("b", &api.NodeDescription{Hostname: "host-b"}, ""),
		reg("gone", &api.NodeDescription{Hostname: "host-gone"}, ""),
		reg("a", nil, "10.0.0.2"),
	}
	var before uint64
	_ = s.View(func(tx store.ReadTx) error { before = tx.Index(); return nil })
	d.registerBatch(ctx, batch)
	for i, r := range batch {
		err := <-r.done
		if wantRefused := r.id.NodeID == "gone"; wantRefused != errors.Is(err, ErrNodeRemoved) || (!wantRefused && err != nil) {
			t.Errorf("registration %d (%s): %v", i, r.id.NodeID, err)
		}
	}
	var a, b *api.Node
	var after uint64
	err = s.View(func(tx store.ReadTx) error {
		after = tx.Index()
		var err error
		if a, err = store.Get[api.Node](tx, "a"); err != nil {
			return err
		}
		b, err = store.Get[api.Node](tx, "b")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if after != before+1 {
		t.Errorf("store index %d → %d: want one write for the batch", before, after)
	}
	if a.Status.State != api.NodeReady || a.Description.Hostname != "host-a" || a.Status.Addr != "10.0.0.2" {
		t.Errorf("node a = %s, %q, %q; want ready, host-a, 10.0.0.2", a.Status.State, a.Description.Hostname, a.Status.Addr)
	}
	if b.Status.State != api.NodeReady || b.Description.Hostname != "host-b" {
		t.Errorf("node b = %s, %q; want ready, host-b", b.Status.State, b.Description.Hostname)
	}
}

// A down verdict records the node's last heartbeat, which only the
// leader's memory held (heartbeats cost no write), not the time it was
// last written ready.
func TestDownRecordsTheLastHeartbeat(t *testing.T) {
	s := storetest.New(t, storetest.Options{Managers: 1}).Store(0)
	d, err := New(Config{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := &registration{id: ca.Identity{NodeID: "a", Role: api.RoleWorker}, desc: &api.NodeDescription{Hostname: "host-a"}, done: make(chan error, 1)}
	d.registerBatch(ctx, []*registration{r})
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	last := time.Now().Add(time.Hour).UTC().Truncate(time.Second) // a heartbeat later than the ready write
	d.live.beat("a", last)
	limit := time.Duration(d.cfg.MissedHeartbeats) * d.cfg.HeartbeatPeriod
	down := d.live.expired(last.Add(limit+time.Second), limit)
	if got, ok := down["a"]; !ok || !got.Equal(last) {
		t.Fatalf("expired %v, want a last heard of at %s", down, last)
	}
	d.live.beat("a", last)
	d.mu.Lock()
	d.leading = true
	d.mu.Unlock()
	d.cfg.Clock = fixedClock{last.Add(limit + time.Second)}
	d.expire(ctx)
	var n *api.Node
	_ = s.View(func(tx store.ReadTx) (err error) { n, err = store.Get[api.Node](tx, "a"); return err })
	if n.Status.State != api.NodeDown || !n.Status.LastHeartbeat.Equal(last) {
		t.Errorf("down node %+v, want down with its last heartbeat at %s", n.Status, last)
	}
}

// fixedClock is a clock that stands still.
type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                 { return c.t }
func (c fixedClock) NewTimer(d time.Duration) Timer { return realClock{}.NewTimer(d) }
