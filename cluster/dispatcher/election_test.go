package dispatcher_test

import (
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// A new leader gives the ready nodes it inherits the tolerance and the
// election grace to find it: not down before, down soon after.
func TestNewLeaderGivesElectionGrace(t *testing.T) {
	st := storetest.New(t, storetest.Options{Managers: 1}).Store(0)
	pre := &env{t: t, store: st}
	pre.create(&api.Node{Meta: api.Meta{ID: "w1"}, Spec: api.NodeSpec{Role: api.RoleWorker},
		Status: api.NodeStatus{State: api.NodeReady}})
	e := newEnv(t, envOptions{store: st})
	waitFor(t, "the dispatcher leading", e.disp.Leading)
	waitFor(t, "the expiry check armed", e.clock.armed)
	period := e.disp.HeartbeatPeriod()
	limit := time.Duration(e.disp.MissedHeartbeats())*period + dispatcher.DefaultElectionGrace
	for silent := period / 4; silent <= limit+period; silent += period / 4 {
		e.clock.Advance(period / 4)
		waitFor(t, "the expiry check armed", e.clock.armed)
		if down := e.nodeState("w1") == api.NodeDown; down && silent <= limit {
			t.Fatalf("down after %s without a session, want the tolerance and the election grace (%s)", silent, limit)
		}
	}
	waitFor(t, "w1 down after the grace", func() bool { return e.nodeState("w1") == api.NodeDown })
}
