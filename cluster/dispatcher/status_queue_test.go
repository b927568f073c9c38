package dispatcher

import (
	"fmt"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
)

// A node's report of a task never displaces another node's report of it
// (the writer then keeps the one of the task's node), and one node's
// queue is bounded.
func TestStatusQueueByNodeAndBounded(t *testing.T) {
	var q statusQueue
	q.init()
	at := time.Unix(100, 0)
	q.add("owner", []wire.TaskStatusUpdate{{TaskID: "t1", Status: api.TaskStatus{State: api.TaskRunning, Timestamp: at}}})
	q.add("intruder", []wire.TaskStatusUpdate{{TaskID: "t1", Status: api.TaskStatus{State: api.TaskFailed, Timestamp: at.Add(time.Second)}}})
	got := q.take(maxStatusBatch)
	if st, ok := got[statusKey{"owner", "t1"}]; !ok || st.State != api.TaskRunning {
		t.Errorf("the owner's report was displaced: %v", got)
	}
	if len(got) != 2 {
		t.Errorf("%d reports queued, want both nodes' (%v)", len(got), got)
	}

	// One node's reports: at most maxQueuedPerNode tasks wait; an update
	// of a task already queued still counts; another node is not held up.
	var ups []wire.TaskStatusUpdate
	for i := range maxQueuedPerNode + 10 {
		ups = append(ups, wire.TaskStatusUpdate{TaskID: fmt.Sprintf("t%d", i), Status: api.TaskStatus{State: api.TaskRunning, Timestamp: at}})
	}
	if dropped := q.add("busy", ups); dropped != 10 {
		t.Errorf("dropped %d, want 10", dropped)
	}
	if dropped := q.add("busy", []wire.TaskStatusUpdate{{TaskID: "t0", Status: api.TaskStatus{State: api.TaskComplete, Timestamp: at.Add(time.Second)}}}); dropped != 0 {
		t.Errorf("an update of a queued task dropped")
	}
	if dropped := q.add("calm", ups[:1]); dropped != 0 {
		t.Errorf("another node's report dropped")
	}
	first := q.take(100)
	if len(first) != 100 {
		t.Fatalf("took %d", len(first))
	}
	// Taking frees room for the node.
	busyTaken := 0
	for k := range first {
		if k.node == "busy" {
			busyTaken++
		}
	}
	fresh := []wire.TaskStatusUpdate{{TaskID: "fresh", Status: api.TaskStatus{State: api.TaskRunning, Timestamp: at}}}
	if dropped := q.add("busy", fresh); busyTaken > 0 && dropped != 0 {
		t.Errorf("the busy node's queue stayed full after %d of its reports were taken", busyTaken)
	}
	rest := q.take(maxQueuedPerNode * 2)
	if st := rest[statusKey{"busy", "t0"}]; st.State != api.TaskComplete && first[statusKey{"busy", "t0"}].State != api.TaskComplete {
		t.Errorf("the newer report of t0 was lost")
	}
}
