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

// queuedStatus is a status reported by a node for one of its tasks.
type queuedStatus struct {
	node string
	st   api.TaskStatus
}

// statusQueue coalesces status updates per task until the writer takes
// them: while one batch is being written, the next one accumulates.
type statusQueue struct {
	mu   sync.Mutex
	m    map[string]queuedStatus // by task ID
	kick chan struct{}
}

func (q *statusQueue) init() {
	q.m = map[string]queuedStatus{}
	q.kick = make(chan struct{}, 1)
}

func (q *statusQueue) add(node string, ups []wire.TaskStatusUpdate) {
	q.mu.Lock()
	for _, u := range ups {
		if u.TaskID == "" {
			continue
		}
		if old, ok := q.m[u.TaskID]; ok && old.node == node && !Advances(old.st, u.Status) {
			continue
		}
		q.m[u.TaskID] = queuedStatus{node: node, st: u.Status}
	}
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// take removes and returns up to max queued updates.
func (q *statusQueue) take(max int) map[string]queuedStatus {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.m) <= max {
		out := q.m
		q.m = map[string]queuedStatus{}
		return out
	}
	out := make(map[string]queuedStatus, max)
	for id, u := range q.m {
		if len(out) == max {
			break
		}
		out[id] = u
		delete(q.m, id)
	}
	return out
}

func (q *statusQueue) reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	clear(q.m)
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
func (d *Dispatcher) writeBatch(ctx context.Context, batch map[string]queuedStatus) error {
	var started []time.Duration // the tasks this batch makes running
	err := d.retryConflicts(ctx, func(tx store.Tx) error {
		started = started[:0]
		now := d.cfg.Clock.Now()
		for id, u := range batch {
			t, err := store.Get[api.Task](tx, id)
			if err != nil {
				continue // deleted meanwhile
			}
			if t.NodeID != u.node {
				d.log.Warn("node reported a task that is not its own", logKeyNode, u.node, logKeyTask, id)
				continue
			}
			if !Advances(t.Status, u.st) {
				continue
			}
			if lat, ok := startLatency(t, u.st, now); ok {
				started = append(started, lat)
			}
			t.Status = u.st
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
