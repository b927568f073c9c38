package storecluster

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/reconcile"
)

var _ reconcile.SyncControl = (*Cluster)(nil)

// conflictRetries bounds the attempts of a read-modify-write that loses
// races with other writers of the sync state.
const conflictRetries = 50

// barrier is the store's read barrier, an optional ability of Store: a
// follower that lost a race catches up with the leader before retrying.
type barrier interface {
	Barrier(ctx context.Context) error
}

// UpdateSync reads the sync state, applies fn and writes the result in
// one transaction, retried on a version conflict (on a follower, the
// transaction is forwarded to the leader like any write). ErrUnchanged
// from fn writes nothing. A request that gains a Record marks that
// history record with its ID in the same transaction.
func (c *Cluster) UpdateSync(ctx context.Context, fn func(*api.SyncState) error) (api.SyncState, error) {
	var out api.SyncState
	attempt := 0
	err := store.RetryConflicts(conflictRetries, func() error {
		if attempt++; attempt > 1 {
			if b, ok := c.st.(barrier); ok {
				if err := b.Barrier(ctx); err != nil {
					return err
				}
			}
		}
		_, err := c.st.Update(ctx, func(tx store.Tx) error {
			cur, exists, err := readSync(tx)
			if err != nil {
				return err
			}
			out = cloneSync(cur)
			next := cloneSync(cur)
			if err := fn(&next); err != nil {
				return err
			}
			next.Meta = cur.Meta
			if err := markRecords(tx, cur.Requests, next.Requests); err != nil {
				return err
			}
			if exists {
				err = tx.Update(&next)
			} else {
				next.Meta = api.Meta{ID: SyncStateID}
				err = tx.Create(&next)
			}
			out = next
			return err
		})
		if errors.Is(err, store.ErrExists) {
			// Another writer created the state first: read it and retry.
			return store.ErrVersionConflict
		}
		return err
	})
	if errors.Is(err, reconcile.ErrUnchanged) {
		return out, nil
	}
	if err != nil {
		return api.SyncState{}, fmt.Errorf("update sync state: %w", err)
	}
	return out, nil
}

// MarkNotified records on a history record that its outcome ev was told
// (reconcile/notify). A record trimmed from the history meanwhile is no
// error.
func (c *Cluster) MarkNotified(ctx context.Context, id, ev string) error {
	err := store.RetryConflicts(conflictRetries, func() error {
		_, err := c.st.Update(ctx, func(tx store.Tx) error {
			rec, err := store.Get[api.SyncRecord](tx, id)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if rec.Notified == ev {
				return nil
			}
			rec.Notified = ev
			return tx.Update(rec)
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("mark sync record %s notified: %w", id, err)
	}
	return nil
}

func readSync(tx store.ReadTx) (api.SyncState, bool, error) {
	cur, err := store.Get[api.SyncState](tx, SyncStateID)
	if errors.Is(err, store.ErrNotFound) {
		return api.SyncState{}, false, nil
	}
	if err != nil {
		return api.SyncState{}, false, err
	}
	return *cur, true, nil
}

// cloneSync copies the parts of a state a writer may change in place.
func cloneSync(s api.SyncState) api.SyncState {
	s.Requests = slices.Clone(s.Requests)
	s.Deliveries = slices.Clone(s.Deliveries)
	s.Notifications = slices.Clone(s.Notifications)
	s.Source.Windows = slices.Clone(s.Source.Windows)
	s.FailedRevisions = slices.Clone(s.FailedRevisions)
	return s
}

// markRecords sets Request on the history records that requests gained.
func markRecords(tx store.Tx, before, after []api.SyncRequest) error {
	had := map[string]string{}
	for _, r := range before {
		had[r.ID] = r.Record
	}
	marked := map[string]bool{} // one sync serves many requests: one write per record
	for _, r := range after {
		if r.Record == "" || had[r.ID] == r.Record || marked[r.Record] {
			continue
		}
		marked[r.Record] = true
		rec, err := store.Get[api.SyncRecord](tx, r.Record)
		if errors.Is(err, store.ErrNotFound) {
			continue // trimmed from the history already
		}
		if err != nil {
			return err
		}
		if rec.Request != "" {
			continue // the first request a sync served names it
		}
		rec.Request = r.ID
		if err := tx.Update(rec); err != nil {
			return err
		}
	}
	return nil
}

// keepControl keeps the stored control fields of the sync state when a
// sync's commit replaces the state: they change only through UpdateSync
// (an operator's suspend or source change, a request, a webhook
// delivery), and a controller that read the state minutes ago must not
// undo them.
func keepControl(s *api.SyncState, cur *api.SyncState) {
	s.Source, s.Suspended, s.Requests, s.Deliveries = cur.Source, cur.Suspended, cur.Requests, cur.Deliveries
	s.Notifications = cur.Notifications
}

// watcher is the store's watch, an optional ability of Store.
type watcher interface {
	Watch(kinds ...store.Kind) (*store.Watcher, error)
}

// WatchSync returns a channel that receives after changes of the sync
// state until ctx ends, when it is closed; a watch that falls behind is
// replaced (and reported as a change), so no change is missed.
func (c *Cluster) WatchSync(ctx context.Context) (<-chan struct{}, error) {
	ws, ok := c.st.(watcher)
	if !ok {
		return nil, errors.New("watch sync state: the store cannot be watched")
	}
	w, err := ws.Watch(store.KindSyncState)
	if err != nil {
		return nil, fmt.Errorf("watch sync state: %w", err)
	}
	out := make(chan struct{}, 1)
	notify := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	go func() {
		defer close(out)
		defer func() { w.Close() }()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-w.Events():
				if ok {
					notify()
					continue
				}
				if errors.Is(w.Err(), store.ErrClosed) {
					return
				}
				// Overflow or a snapshot restore: watch again and say
				// that something changed.
				if w, err = ws.Watch(store.KindSyncState); err != nil {
					return
				}
				notify()
			}
		}
	}()
	return out, nil
}
