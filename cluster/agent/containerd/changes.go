package containerd

import (
	"context"
	"fmt"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/typeurl/v2"

	"github.com/gitorc/gitorc/cluster/agent"
)

var _ agent.ChangeNotifier = (*Executor)(nil)

// A task's process that exits is something the agent must hear of at
// once: it is the start of a replacement (restart delay 0 under Swarm's
// semantics). Rather than wait for the agent's next observation (its
// interval, 1 s), the executor follows containerd's exit events of its
// namespace, records each exit in its process cache (procs.go) and
// signals Changes; a healthcheck whose verdict changes signals it too.
// The signal carries nothing: the agent observes everything again, so a
// lost or merged signal costs at most an interval.
const (
	exitTopic = "/tasks/exit"
	// Bounds of the wait before subscribing again after the event stream
	// failed (containerd restarting).
	eventsMinBackoff = 100 * time.Millisecond
	eventsMaxBackoff = 5 * time.Second
)

// Changes is signalled when a container may have changed on its own: its
// process exited, its health verdict changed (agent.ChangeNotifier).
// Exits are followed while Run runs.
func (e *Executor) Changes() <-chan struct{} { return e.changes }

// notify signals Changes without blocking.
func (e *Executor) notify() {
	select {
	case e.changes <- struct{}{}:
	default:
	}
}

// watchExits signals Changes for every exit event of the namespace until
// ctx ends, subscribing again (with a backoff) when the stream fails. A
// new subscription signals once too: exits may have come meanwhile.
func (e *Executor) watchExits(ctx context.Context) {
	filter := fmt.Sprintf("namespace==%q,topic==%q", e.cfg.Namespace, exitTopic)
	failures := 0
	lastErr := ""
	for ctx.Err() == nil {
		sctx, cancel := context.WithCancel(ctx)
		evs, errs := e.client.EventService().Subscribe(sctx, filter)
		err := e.forwardExits(sctx, evs, errs, &failures)
		cancel()
		if ctx.Err() != nil {
			return
		}
		wait := eventsMinBackoff << min(failures, 6)
		wait = min(wait, eventsMaxBackoff)
		failures++
		if msg := fmt.Sprint(err); msg != lastErr {
			e.log.Warn("containerd exit events", logKeyErr, err, "wait", wait)
			lastErr = msg
		}
		t := e.cfg.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		e.notify()
	}
}

// forwardExits records each exit of a task's process (not of a
// healthcheck's exec) in the process cache and signals Changes, until the
// stream fails. Once subscribed, it lists the tasks (the cache is current
// from then on, until the stream fails).
func (e *Executor) forwardExits(ctx context.Context, evs <-chan *events.Envelope, errs <-chan error, failures *int) error {
	defer e.procs.setLive(false)
	if _, err := e.listTasks(ctx); err != nil {
		return err
	}
	e.procs.setLive(true)
	e.notify() // exits before the subscription are in the list
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-evs:
			if ev == nil || ev.Topic != exitTopic || ev.Event == nil {
				continue
			}
			*failures = 0
			v, err := typeurl.UnmarshalAny(ev.Event)
			if err != nil {
				e.procs.setLive(false) // unknown: list until the next subscription
				e.notify()
				return fmt.Errorf("exit event: %w", err)
			}
			x, ok := v.(*eventstypes.TaskExit)
			if !ok || x.ID != x.ContainerID {
				continue // an exec's exit (a healthcheck probe)
			}
			var at time.Time
			if x.ExitedAt != nil {
				at = x.ExitedAt.AsTime()
			}
			e.procs.exited(x.ContainerID, x.Pid, x.ExitStatus, at)
			e.notify()
		case err := <-errs:
			return err
		}
	}
}
