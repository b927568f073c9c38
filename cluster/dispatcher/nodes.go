package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
)

// conflictRetries bounds the retries of a write that lost a version race.
const conflictRetries = 5

// seenAt is when a node last gave a sign of life (t), and when it last
// sent a heartbeat (hb; zero before its first in this leader's term).
type seenAt struct{ t, hb time.Time }

// liveness holds the last heartbeat of every node that is ready as far as
// this leader knows, in memory: heartbeats cost no Raft write. A node
// absent from seen is down (or unknown); its next sign of life marks it
// ready again. writeMu orders the ready and down writes of nodes, so that
// a heartbeat racing an expiry always leaves the node ready.
type liveness struct {
	mu      sync.Mutex
	seen    map[string]seenAt
	writeMu sync.Mutex
}

// seed gives every node stored as ready a full tolerance from now plus
// the grace for that many ready nodes (a seen time after the election).
func (l *liveness) seed(s Store, now time.Time, grace func(ready int) time.Duration) error {
	var ready []string
	err := s.View(func(tx store.ReadTx) error {
		nodes, err := store.Find[api.Node](tx, store.All())
		for _, n := range nodes {
			if n.Status.State == api.NodeReady {
				ready = append(ready, n.ID)
			}
		}
		return err
	})
	at := now.Add(grace(len(ready)))
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ready {
		if _, ok := l.seen[id]; !ok {
			l.seen[id] = seenAt{t: at}
		}
	}
	return err
}

func (l *liveness) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.seen)
}

// beat records a sign of life and reports whether the node was not
// known to be ready.
func (l *liveness) beat(id string, now time.Time) (wasDown bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.seen[id]
	s.t = now
	l.seen[id] = s
	return !ok
}

// touch records a sign of life of a node known to be ready; it does
// nothing for another (its ready write decides).
func (l *liveness) touch(id string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.seen[id]; ok && now.After(s.t) {
		s.t = now
		l.seen[id] = s
	}
}

// heartbeat records a heartbeat of a node known to be ready and returns
// the time of its previous one (zero when unknown).
func (l *liveness) heartbeat(id string, now time.Time) (prev time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.seen[id]
	if !ok {
		return time.Time{}
	}
	prev, s.hb = s.hb, now
	l.seen[id] = s
	return prev
}

// forget drops a node whose ready write failed, so that its next beat
// retries it.
func (l *liveness) forget(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.seen, id)
}

// expired removes and returns the nodes silent for longer than limit,
// with when each was last heard of.
func (l *liveness) expired(now time.Time, limit time.Duration) map[string]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]time.Time{}
	for id, s := range l.seen {
		if now.Sub(s.t) > limit {
			out[id] = s.t
			delete(l.seen, id)
		}
	}
	return out
}

// expire marks down the nodes silent for longer than MissedHeartbeats periods.
func (d *Dispatcher) expire(ctx context.Context) {
	d.mu.Lock()
	leading := d.leading
	d.mu.Unlock()
	if !leading {
		return
	}
	limit := time.Duration(d.cfg.MissedHeartbeats) * d.cfg.HeartbeatPeriod
	d.live.writeMu.Lock()
	defer d.live.writeMu.Unlock()
	down := d.live.expired(d.cfg.Clock.Now(), limit)
	if len(down) == 0 {
		return
	}
	msg := fmt.Sprintf("no heartbeat for %s (%d periods)", limit, d.cfg.MissedHeartbeats)
	err := d.retryConflicts(ctx, func(tx store.Tx) error {
		for id, last := range down {
			n, err := store.Get[api.Node](tx, id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if n.Status.State == api.NodeDown {
				continue
			}
			n.Status.State, n.Status.Message = api.NodeDown, msg
			if !last.IsZero() {
				n.Status.LastHeartbeat = last.UTC() // heartbeats are not written: the last one is, now
			}
			if err := tx.Update(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		d.log.Warn("mark nodes down", logKeyN, len(down), logKeyErr, err)
		// Try again at the next tick.
		for id := range down {
			d.live.mu.Lock()
			if _, ok := d.live.seen[id]; !ok {
				d.live.seen[id] = seenAt{}
			}
			d.live.mu.Unlock()
		}
		return
	}
	for id := range down {
		d.log.Info("node down", logKeyNode, id, "reason", msg)
	}
}

// retryConflicts runs an update, retrying when it lost a version race.
func (d *Dispatcher) retryConflicts(ctx context.Context, fn func(store.Tx) error) error {
	var err error
	for range conflictRetries {
		if _, err = d.cfg.Store.Update(ctx, fn); !errors.Is(err, store.ErrVersionConflict) {
			return err
		}
	}
	return err
}
