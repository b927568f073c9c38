package node

import (
	"context"
	"iter"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/gitorc/gitorc/reconcile/notify"
	"github.com/gitorc/gitorc/reconcile/storecluster"
)

// Cluster keys of the notifications: the HMAC key of the events posted
// to the notify URL, and the Git host's token for commit statuses.
const (
	keyNotifySecret      = "gitorc-internal-notify-secret"
	keyCommitStatusToken = "gitorc-internal-commit-status-token"
)

// notifyBackoff is the first wait before a notification is tried again
// (doubled each time, five tries); tests shorten it.
var notifyBackoff = time.Second

// runNotifier tells of each sync the leader runs, as the source's notify
// spec says (reconcile/notify): it follows the sync records in the store,
// a started one (the commit's status pending) and a finished one (its
// outcome). Deliveries are reported on the sync state. It runs on the
// leader until ctx ends.
func (d *daemon) runNotifier(ctx context.Context) error {
	cl := storecluster.New(d.store)
	n := notify.New(notify.Config{
		Logger:  d.log.With("component", "notify"),
		Backoff: notifyBackoff,
		Keys: func() notify.Keys {
			var k notify.Keys
			k.Secret, _ = d.clusterKey(keyNotifySecret)
			k.Token, _ = d.clusterKey(keyCommitStatusToken)
			return k
		},
		Report: func(dl api.NotifyDelivery) {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if _, err := cl.UpdateSync(rctx, func(s *api.SyncState) error { reconcile.AddNotification(s, dl); return nil }); err != nil {
				d.log.Warn("record a notification", "err", err)
			}
		},
		Told: func(rec api.SyncRecord, ev string) {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := cl.MarkNotified(rctx, rec.ID, ev); err != nil {
				d.log.Warn("record a notification", "err", err)
			}
		},
	})
	go func() { _ = n.Run(ctx) }()
	// What was told of each record: a record is written again after it
	// ended (the request it served is marked on it).
	told := map[string]string{}
	var order []string
	tell := func(st api.SyncState, rec *api.SyncRecord) {
		ev := notify.EventOf(*rec)
		if told[rec.ID] == ev || len(notify.Owed(st.Source.Notify, []api.SyncRecord{*rec})) == 0 {
			return // told, or ended before notifications were set
		}
		if _, ok := told[rec.ID]; !ok {
			order = append(order, rec.ID)
			if len(order) > 256 {
				delete(told, order[0])
				order = order[1:]
			}
		}
		told[rec.ID] = ev
		n.Notify(st.Source.Notify, *rec, d.recordServices(st, rec))
	}
	for ctx.Err() == nil {
		w, err := d.store.Watch(store.KindSyncRecord)
		if err != nil {
			return err
		}
		// What the last leader (or this one, before its watch
		// overflowed) did not tell: the watch started after it.
		if st, err := cl.Sync(ctx); err == nil {
			if recs, err := cl.History(ctx); err == nil {
				for _, rec := range notify.Owed(st.Source.Notify, recs) {
					tell(st, &rec)
				}
			}
		}
		// The watch is read until it ends or ctx does: a leader that
		// steps down must not wait for the next record to stop (its
		// controllers restart only when all of them have).
		for ev := range eventsUntil(ctx, w) {
			if ev.Action == store.ActionDelete {
				continue
			}
			obj, err := ev.Object()
			rec, ok := obj.(*api.SyncRecord)
			if err != nil || !ok {
				continue
			}
			// A record is written when its sync starts and when it ends
			// (once each: a new leader finishes it in place).
			if ev.Action == store.ActionCreate || !rec.FinishedAt.IsZero() {
				// (A record created finished, a load that failed, is told
				// once, as finished.)
				st, err := cl.Sync(ctx)
				if err == nil {
					tell(st, rec)
				}
			}
		}
		w.Close()
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond): // the watch overflowed: watch again
		}
	}
	return nil
}

// eventsUntil yields w's events until the watch ends or ctx does.
func eventsUntil(ctx context.Context, w *store.Watcher) iter.Seq[store.Event] {
	return func(yield func(store.Event) bool) {
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events():
				if !ok || !yield(ev) {
					return
				}
			}
		}
	}
}

// recordServices are the services a sync record's apply changed, when
// the sync state still tracks it.
func (d *daemon) recordServices(st api.SyncState, rec *api.SyncRecord) []string {
	if st.InFlight != nil && st.InFlight.Record.ID == rec.ID {
		return append(st.InFlight.Changed, st.InFlight.Removed...)
	}
	return nil
}
