package dispatcher

import (
	"context"
	"sync"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/gitorc/gitorc/cluster/store"
)

// maxStatusBatch bounds the task updates of one store transaction.
const maxStatusBatch = 1000

// statusKey is a task as a node reports it: a node's report never
// displaces another node's report of the same task (the writer keeps only
// the one of the node the task is on).
type statusKey struct{ node, task string }

// maxQueuedPerNode bounds the statuses one node has waiting: beyond it,
// its new tasks' reports are dropped (add says how many) until the writer
// takes some; the session then ends (ErrStatusesDropped), and the node
// reports its tasks again on its next session.
const maxQueuedPerNode = 4096

// statusQueue coalesces status updates per node and task until the writer
// takes them: while one batch is being written, the next one accumulates.
type statusQueue struct {
	mu      sync.Mutex
	m       map[statusKey]api.TaskStatus
	perNode map[string]int
	kick    chan struct{}
}

func (q *statusQueue) init() {
	q.m = map[statusKey]api.TaskStatus{}
	q.perNode = map[string]int{}
	q.kick = make(chan struct{}, 1)
}

// add queues a node's reports and returns how many it dropped, its queue
// being full.
func (q *statusQueue) add(node string, ups []wire.TaskStatusUpdate) (dropped int) {
	q.mu.Lock()
	for _, u := range ups {
		if u.TaskID == "" {
			continue
		}
		k := statusKey{node, u.TaskID}
		if old, ok := q.m[k]; ok {
			if Advances(old, u.Status) {
				q.m[k] = u.Status
			}
			continue
		}
		if q.perNode[node] >= maxQueuedPerNode {
			dropped++
			continue
		}
		q.m[k] = u.Status
		q.perNode[node]++
	}
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
	return dropped
}

// take removes and returns up to max queued updates.
func (q *statusQueue) take(max int) map[statusKey]api.TaskStatus {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.m) <= max {
		out := q.m
		q.m = map[statusKey]api.TaskStatus{}
		clear(q.perNode)
		return out
	}
	out := make(map[statusKey]api.TaskStatus, max)
	for k, st := range q.m {
		if len(out) == max {
			break
		}
		out[k] = st
		delete(q.m, k)
		if q.perNode[k.node]--; q.perNode[k.node] <= 0 {
			delete(q.perNode, k.node)
		}
	}
	return out
}

func (q *statusQueue) reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	clear(q.m)
	clear(q.perNode)
}

// Advances reports whether a reported status may replace the stored one:
// a later state, or the same state with a newer timestamp (a health
// change, a new message). Anything else is stale and ignored.
func Advances(cur, next api.TaskStatus) bool {
	if next.State != cur.State {
		return next.State > cur.State
	}
	return next.Timestamp.After(cur.Timestamp)
}

// writeStatuses writes queued statuses in batches until ctx ends.
func (d *Dispatcher) writeStatuses(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.pending.kick:
		}
		for ctx.Err() == nil {
			batch := d.pending.take(maxStatusBatch)
			if len(batch) == 0 {
				break
			}
			if err := d.writeBatch(ctx, batch); err != nil && ctx.Err() == nil {
				// Dropped: workers send their latest statuses again on
				// their next session, and the leader that lost its
				// leadership here ends the sessions.
				d.log.Warn("write task statuses", logKeyN, len(batch), logKeyErr, err)
			}
		}
	}
}

// writeBatch applies a batch in one transaction: each update only if the
// task is the reporting node's and the status moves forward.
func (d *Dispatcher) writeBatch(ctx context.Context, batch map[statusKey]api.TaskStatus) error {
	var started []time.Duration // the tasks this batch makes running
	err := d.retryConflicts(ctx, func(tx store.Tx) error {
		started = started[:0]
		now := d.cfg.Clock.Now()
		for k, st := range batch {
			t, err := store.Get[api.Task](tx, k.task)
			if err != nil {
				continue // deleted meanwhile
			}
			if t.NodeID != k.node {
				d.log.Warn("node reported a task that is not its own", logKeyNode, k.node, logKeyTask, k.task)
				continue
			}
			if !Advances(t.Status, st) {
				continue
			}
			if lat, ok := startLatency(t, st, now); ok {
				started = append(started, lat)
			}
			t.Status = st
			if err := tx.Update(t); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		d.cfg.Metrics.observeStarts(started)
	}
	return err
}
