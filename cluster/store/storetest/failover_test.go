package storetest_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/google/go-cmp/cmp"
)

func TestKillLeaderThenRestart(t *testing.T) {
	c := storetest.New(t, storetest.Options{})
	old := c.Leader()
	for _, n := range names(5, "before") {
		createRetry(t, c, n, n)
	}
	c.Kill(old)
	nl, err := c.WaitLeader(waitLong, old)
	if err != nil {
		t.Fatalf("no new leader after killing %d: %v", old, err)
	}
	if nl == old {
		t.Fatalf("killed manager still leads")
	}
	for _, n := range names(5, "after") {
		createRetry(t, c, n, n)
	}
	if err := c.Restart(old); err != nil {
		t.Fatal(err)
	}
	mustConverge(t, c)
	want := configNames(t, c.Store(nl))
	if len(want) != 10 {
		t.Fatalf("leader has %d configs, want 10", len(want))
	}
	if diff := cmp.Diff(want, configNames(t, c.Store(old))); diff != "" {
		t.Errorf("restarted manager did not catch up (-leader +restarted):\n%s", diff)
	}
}

func TestPartitionedMinorityCannotCommit(t *testing.T) {
	c := storetest.New(t, storetest.Options{})
	old := c.Leader()
	createRetry(t, c, "base", "0")

	c.Partition(old) // the leader alone is the minority
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := createConfig(ctx, c.Store(old), "minority", "x")
	cancel()
	if err == nil {
		t.Fatal("a partitioned leader committed a write")
	}
	nl, err := c.WaitLeader(waitLong, old)
	if err != nil {
		t.Fatalf("majority elected no leader: %v", err)
	}
	ctx = ctxT(t, waitLong)
	if _, err := createConfig(ctx, c.Store(nl), "majority", "y"); err != nil {
		t.Fatalf("majority cannot commit: %v", err)
	}
	// A follower in the majority forwards to the new leader.
	f := 3 - old - nl
	if _, err := createConfig(ctx, c.Store(f), "majority-follower", "z"); err != nil {
		t.Fatalf("majority follower cannot commit: %v", err)
	}
	// The old leader's reads through a barrier fail: it cannot prove it leads.
	bctx, bcancel := context.WithTimeout(context.Background(), time.Second)
	if err := c.Store(old).Barrier(bctx); err == nil {
		t.Error("barrier succeeded in the minority")
	}
	bcancel()

	c.Heal()
	mustConverge(t, c)
	want := map[string]string{"base": "0", "majority": "y", "majority-follower": "z"}
	for i := range 3 {
		if diff := cmp.Diff(want, configNames(t, c.Store(i))); diff != "" {
			t.Errorf("manager %d after heal (-want +got):\n%s", i, diff)
		}
	}
}

func TestPartitionedFollowerCatchesUp(t *testing.T) {
	c := storetest.New(t, storetest.Options{})
	l := c.Leader()
	f := (l + 1) % 3
	c.Partition(f)
	ctx := ctxT(t, waitLong)
	if _, err := createConfig(ctx, c.Store(l), "while-cut", "1"); err != nil {
		t.Fatalf("majority write: %v", err)
	}
	short, cancel := context.WithTimeout(context.Background(), time.Second)
	_, err := createConfig(short, c.Store(f), "from-cut-follower", "2")
	cancel()
	if err == nil {
		t.Fatal("a cut-off follower committed a write")
	}
	c.Heal()
	mustConverge(t, c)
	if got := configNames(t, c.Store(f)); got["while-cut"] != "1" || len(got) != 1 {
		t.Errorf("healed follower has %v", got)
	}
}

func TestOptimisticConcurrency(t *testing.T) {
	c := storetest.New(t, storetest.Options{})
	ctx := ctxT(t, waitLong)
	l := c.Leader()
	svc := &api.Service{Spec: api.ServiceSpec{Name: "web", Replicas: 1}}
	if _, err := c.Store(l).Update(ctx, func(tx store.Tx) error { return tx.Create(svc) }); err != nil {
		t.Fatal(err)
	}
	mustConverge(t, c)

	// Two writers read the same version and race, one on the leader and one
	// through a follower: exactly one wins.
	results := make(chan error, 2)
	for i, m := range []int{l, (l + 1) % 3} {
		go func() {
			mine := *svc
			mine.Spec.Replicas = uint64(10 + i)
			_, err := c.Store(m).Update(ctx, func(tx store.Tx) error { return tx.Update(&mine) })
			results <- err
		}()
	}
	var wins, conflicts int
	for range 2 {
		switch err := <-results; {
		case err == nil:
			wins++
		case errors.Is(err, store.ErrVersionConflict):
			conflicts++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if wins != 1 || conflicts != 1 {
		t.Fatalf("wins=%d conflicts=%d, want 1 and 1", wins, conflicts)
	}
	// The stale version stays stale.
	stale := *svc
	_, err := c.Store(l).Update(ctx, func(tx store.Tx) error { return tx.Update(&stale) })
	if !errors.Is(err, store.ErrVersionConflict) {
		t.Fatalf("stale update: err = %v", err)
	}
	// Reading and updating at the current version works.
	_, err = c.Store(l).Update(ctx, func(tx store.Tx) error {
		cur, err := store.Get[api.Service](tx, svc.ID)
		if err != nil {
			return err
		}
		cur.Spec.Replicas = 3
		return tx.Update(cur)
	})
	if err != nil {
		t.Fatalf("fresh update: %v", err)
	}
}

func TestWatchLeaderSeesFailover(t *testing.T) {
	c := storetest.New(t, storetest.Options{})
	old := c.Leader()
	f := (old + 1) % 3
	ch, stop := c.Store(f).WatchLeader()
	defer stop()
	first := <-ch
	if first.ID != c.ID(old) || first.IsLeader {
		t.Fatalf("initial leader info %+v, want leader %s", first, c.ID(old))
	}
	c.Kill(old)
	deadline := time.After(waitLong)
	for {
		select {
		case li := <-ch:
			if li.ID != "" && li.ID != c.ID(old) {
				return
			}
		case <-deadline:
			t.Fatal("no leadership change observed")
		}
	}
}

// A write sent to a follower right after the leader died, while the
// follower still names the dead leader, goes through in that one call
// once Raft elects another: the follower's forward fails without sending
// anything, and it waits for a leader instead of returning the error.
func TestWriteOnFollowerRidesOutElection(t *testing.T) {
	c := storetest.New(t, storetest.Options{})
	old := c.Leader()
	createRetry(t, c, "before", "0")
	f := (old + 1) % 3
	c.Kill(old)
	if li := c.Store(f).Leader(); li.Addr != c.Addr(old) {
		t.Logf("follower already past the old leader (%+v): the test shows less", li)
	}
	if _, err := createConfig(ctxT(t, waitLong), c.Store(f), "during", "1"); err != nil {
		t.Fatalf("write on a follower during the election: %v", err)
	}
	if li := c.Store(f).Leader(); li.Addr == c.Addr(old) || li.Addr == "" {
		t.Errorf("the write returned, but the follower names leader %+v", li)
	}
	got := configNames(t, c.Store(f))
	if len(got) != 2 {
		t.Errorf("follower has configs %v, want before and during", got)
	}
}

// A follower's write to a leader that is cut off (its packets dropped, so
// the forward gets no answer rather than a refusal) goes to the next
// leader once Raft names one, instead of waiting out ApplyTimeout on the
// dead connection and failing as "outcome unknown".
func TestWriteToCutOffLeaderGoesToTheNext(t *testing.T) {
	c := storetest.New(t, storetest.Options{})
	createRetry(t, c, "before", "0")
	old := c.Leader()
	f := (old + 1) % 3
	c.Net().SetDrop(true)
	c.Partition(old)
	if li := c.Store(f).Leader(); li.Addr != c.Addr(old) {
		t.Logf("follower already past the old leader (%+v): the test shows less", li)
	}
	if _, err := createConfig(ctxT(t, waitLong), c.Store(f), "during", "1"); err != nil {
		t.Fatalf("write on a follower while its leader is cut off: %v", err)
	}
	if li := c.Store(f).Leader(); li.Addr == c.Addr(old) || li.Addr == "" {
		t.Errorf("the write returned, but the follower names leader %+v", li)
	}
	c.Heal()
	mustConverge(t, c)
	for i := range c.Size() {
		if n := countConfigs(t, c.Store(i), "during"); n != 1 {
			t.Errorf("manager %d holds %d configs named during, want 1", i, n)
		}
	}
}

// A forwarded write that committed, but whose answer was lost with its
// leader, is settled as applied (not sent again, which would fail on its
// own first copy, nor reported as "outcome unknown").
func TestWriteWhoseAnswerIsLostIsSettled(t *testing.T) {
	var c *storetest.Cluster
	var armed atomic.Bool
	var once sync.Once
	c = storetest.New(t, storetest.Options{AfterForward: func(_, to string) {
		if !armed.Load() {
			return
		}
		once.Do(func() {
			for i := range c.Size() {
				if c.Addr(i) == to {
					c.Net().SetDrop(true)
					c.Partition(i)
				}
			}
		})
	}})
	createRetry(t, c, "before", "0")
	old := c.Leader()
	f := (old + 1) % 3
	armed.Store(true)
	if _, err := createConfig(ctxT(t, waitLong), c.Store(f), "during", "1"); err != nil {
		t.Fatalf("write whose answer was lost: %v", err)
	}
	if !c.Net().Blocked(c.Addr(f), c.Addr(old)) {
		t.Fatalf("the forward's answer was not lost (the write went to manager %d, not the leader %d): the test shows nothing", f, old)
	}
	if n := countConfigs(t, c.Store(f), "during"); n != 1 {
		t.Errorf("follower holds %d configs named during, want 1", n)
	}
	c.Heal()
	mustConverge(t, c)
	for i := range c.Size() {
		if n := countConfigs(t, c.Store(i), "during"); n != 1 {
			t.Errorf("manager %d holds %d configs named during, want 1", i, n)
		}
	}
}

func countConfigs(t testing.TB, s *store.Store, name string) int {
	t.Helper()
	var n int
	err := s.View(func(tx store.ReadTx) error {
		cs, err := store.Find[api.Config](tx, store.All())
		for _, c := range cs {
			if c.Spec.Name == name {
				n++
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
