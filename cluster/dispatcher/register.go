package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/store"
)

// maxRegisterBatch bounds the nodes of one ready write.
const maxRegisterBatch = 1000

// registration is a node to mark ready: a session's hello (desc set) or
// the first sign of life of a node that was down (desc nil).
type registration struct {
	id   ca.Identity
	desc *api.NodeDescription
	addr string
	done chan error // buffered: the writer never waits for the session
}

// registrations queues the ready writes of nodes, so that the writer
// commits all that wait in one transaction: one write per node, each a
// Raft commit in turn, made 1,000 simulated nodes take 20-30 s to be ready
// on a loaded machine.
type registrations struct {
	mu    sync.Mutex
	queue []*registration
	kick  chan struct{}
}

func (q *registrations) init() { q.kick = make(chan struct{}, 1) }

func (q *registrations) add(r *registration) {
	q.mu.Lock()
	q.queue = append(q.queue, r)
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// take removes and returns up to max queued registrations, oldest first.
func (q *registrations) take(max int) []*registration {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(max, len(q.queue))
	out := q.queue[:n:n]
	q.queue = q.queue[n:]
	if len(q.queue) == 0 {
		q.queue = nil
	}
	return out
}

// markReady creates or updates the node of a session and marks it ready,
// in the writer's next batch (writeRegistrations), and waits for it.
// desc is nil for a heartbeat of a node that was down.
func (d *Dispatcher) markReady(ctx context.Context, id ca.Identity, desc *api.NodeDescription, addr string) error {
	r := &registration{id: id, desc: desc, addr: addr, done: make(chan error, 1)}
	d.regs.add(r)
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// writeRegistrations writes queued registrations in batches until ctx
// ends.
func (d *Dispatcher) writeRegistrations(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.regs.kick:
		}
		for ctx.Err() == nil {
			batch := d.regs.take(maxRegisterBatch)
			if len(batch) == 0 {
				break
			}
			d.registerBatch(ctx, batch)
		}
	}
}

// registerBatch marks a batch of nodes ready in one transaction and tells
// each registration its outcome: a removed node is refused alone.
func (d *Dispatcher) registerBatch(ctx context.Context, batch []*registration) {
	d.live.writeMu.Lock()
	defer d.live.writeMu.Unlock()
	now := d.cfg.Clock.Now().UTC()
	refused := make([]error, len(batch))
	err := d.retryConflicts(ctx, func(tx store.Tx) error {
		clear(refused)
		nodes := map[string]*api.Node{} // the batch's nodes, as it leaves them
		created := map[string]bool{}
		var order []string
		for i, r := range batch {
			n, ok := nodes[r.id.NodeID]
			if !ok {
				var err error
				n, err = store.Get[api.Node](tx, r.id.NodeID)
				switch {
				case errors.Is(err, store.ErrNotFound):
					n = &api.Node{Meta: api.Meta{ID: r.id.NodeID},
						Spec: api.NodeSpec{Role: r.id.Role, Availability: api.AvailabilityActive}}
					created[n.ID] = true
				case err != nil:
					return err
				case n.Removed():
					refused[i] = fmt.Errorf("node %s: %w", r.id.NodeID, ErrNodeRemoved)
					continue
				}
				nodes[n.ID] = n
				order = append(order, n.ID)
			}
			if r.desc != nil {
				n.Description = *r.desc
			}
			if r.addr != "" {
				n.Status.Addr = r.addr
			}
			n.Status.State, n.Status.Message, n.Status.LastHeartbeat = api.NodeReady, "", now
		}
		for _, id := range order {
			var err error
			if created[id] {
				err = tx.Create(nodes[id])
			} else {
				err = tx.Update(nodes[id])
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	for i, r := range batch {
		e := refused[i]
		if err != nil {
			e = err
		}
		if e != nil {
			e = fmt.Errorf("mark node %s ready: %w", r.id.NodeID, e)
		}
		r.done <- e
	}
}
