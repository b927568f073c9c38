package dispatcher_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// A new leader gives the ready nodes it inherits the tolerance and the
// election grace to find it: not down before, down soon after.
func TestNewLeaderGivesElectionGrace(t *testing.T) {
	testElectionGrace(t, 1, 0)
}

// The grace grows with the fleet the leader inherits: with 1 s a node,
// 6 inherited nodes get 6 s more than the base grace.
func TestElectionGraceGrowsWithTheFleet(t *testing.T) {
	testElectionGrace(t, 6, time.Second)
}

// testElectionGrace stores n ready nodes, makes a dispatcher leader with
// gracePer a node, and checks that none is down before the tolerance and
// the base grace and n × gracePer, and that all are soon after.
func testElectionGrace(t *testing.T, n int, gracePer time.Duration) {
	st := storetest.New(t, storetest.Options{Managers: 1}).Store(0)
	pre := &env{t: t, store: st}
	for i := range n {
		pre.create(&api.Node{Meta: api.Meta{ID: fmt.Sprintf("w%d", i)}, Spec: api.NodeSpec{Role: api.RoleWorker},
			Status: api.NodeStatus{State: api.NodeReady}})
	}
	e := newEnv(t, envOptions{store: st, gracePer: gracePer})
	waitFor(t, "the dispatcher leading", e.disp.Leading)
	waitFor(t, "the expiry check armed", e.clock.armed)
	if gracePer == 0 {
		gracePer = dispatcher.DefaultElectionGracePerNode
	}
	period := e.disp.HeartbeatPeriod()
	limit := time.Duration(e.disp.MissedHeartbeats())*period + dispatcher.DefaultElectionGrace + time.Duration(n)*gracePer
	anyDown := func() bool {
		for i := range n {
			if e.nodeState(fmt.Sprintf("w%d", i)) == api.NodeDown {
				return true
			}
		}
		return false
	}
	for silent := period / 4; silent <= limit+period; silent += period / 4 {
		e.clock.Advance(period / 4)
		waitFor(t, "the expiry check armed", e.clock.armed)
		if anyDown() && silent <= limit {
			t.Fatalf("a node was down after %s without a session, want the tolerance and the election grace for %d nodes (%s)", silent, n, limit)
		}
	}
	waitFor(t, "every node down after the grace", func() bool {
		for i := range n {
			if e.nodeState(fmt.Sprintf("w%d", i)) != api.NodeDown {
				return false
			}
		}
		return true
	})
}

// However large the fleet, the grace stops at MaxElectionGrace.
func TestElectionGraceIsBounded(t *testing.T) {
	e := newEnv(t, envOptions{})
	if g := e.disp.ElectionGrace(0); g != dispatcher.DefaultElectionGrace {
		t.Errorf("grace for no node: %s, want %s", g, dispatcher.DefaultElectionGrace)
	}
	if g := e.disp.ElectionGrace(1_000_000); g != dispatcher.MaxElectionGrace {
		t.Errorf("grace for a million nodes: %s, want the bound %s", g, dispatcher.MaxElectionGrace)
	}
}
