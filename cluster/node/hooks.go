package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/gitorc/gitorc/reconcile/storecluster"
	"github.com/gitorc/gitorc/reconcile/webhook"
)

// keyWebhookSecret is the internal secret (clusterkeys.go) holding the
// webhooks' shared secret: replicated, encrypted at rest, never shown.
const keyWebhookSecret = "gitorc-internal-webhook-secret"

// Webhook server timeouts.
const (
	hookReadTimeout = 30 * time.Second
	hookTimeout     = 15 * time.Second // verify, and write the request into the store
	// refusedEvery is the least time between two refused deliveries kept
	// on the sync state (unauthenticated senders must not fill the Raft
	// log); every one is logged.
	refusedEvery = time.Second
)

// serveHooks serves POST /hooks/{github,gitlab,gitea,generic} on the
// node's webhook address, on every manager: a verified push for the
// followed ref becomes a sync request in the store, which the leader
// takes. Plain HTTP: put a TLS proxy in front, as for Flux's receiver.
func (d *daemon) serveHooks(ctx context.Context) error {
	addr := d.state.WebhookListen
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("webhook listener %s: %w", addr, err)
	}
	h := &hooks{d: d, cl: storecluster.New(d.store), log: d.log.With("component", "webhook")}
	// One handler for the listener: its limits (the signature header
	// checked before the body is read, 1 MiB bodies, 8 deliveries in
	// flight, replayed delivery IDs, throttled log lines) hold across
	// deliveries.
	hh, err := webhook.NewHandler(webhook.Config{Keys: h.keys, Logger: h.log, OnDelivery: h.delivered,
		Metrics: d.metrics.webhookMetrics()}, h)
	if err != nil {
		ln.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/hooks/{provider}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), hookTimeout)
		defer cancel()
		hh.ServeHTTP(w, r.WithContext(ctx))
	}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: hookReadTimeout,
		WriteTimeout: hookReadTimeout + hookTimeout, MaxHeaderBytes: 64 << 10}
	d.log.Info("serving webhooks", "listen", ln.Addr().String())
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// hooks answers webhook deliveries with what will happen, and keeps the
// last ones on the sync state.
type hooks struct {
	d   *daemon
	cl  *storecluster.Cluster
	log *slog.Logger

	mu          sync.Mutex
	lastRefused time.Time
	unrecorded  int // refused deliveries not kept since the last one kept
}

// keys gives the webhook handler the secret and the followed ref, for a
// delivery whose signature header is well formed.
func (h *hooks) keys(ctx context.Context) (webhook.Keys, error) {
	st, err := h.cl.Sync(ctx)
	if err != nil {
		return webhook.Keys{}, fmt.Errorf("read the sync state: %w", err)
	}
	if st.Source.URL == "" {
		return webhook.Keys{}, webhook.Refuse(http.StatusConflict, "this cluster follows no Git source (gitorc source set --repo); nothing changed")
	}
	secret, err := h.d.clusterKey(keyWebhookSecret)
	if errors.Is(err, errNoClusterKey) || (err == nil && len(secret) == 0) {
		return webhook.Keys{}, webhook.Refuse(http.StatusUnauthorized, "no webhook secret is configured (gitorc source set --webhook-secret-file FILE); nothing changed")
	}
	if err != nil {
		return webhook.Keys{}, fmt.Errorf("read the webhook secret: %w", err)
	}
	return webhook.Keys{Secret: secret, Ref: st.Source.Ref}, nil
}

// Trigger queues a sync request for a verified push, with the delivery,
// in one transaction: a burst of deliveries folds into the one pending
// request. While syncs are suspended the push is ignored.
func (h *hooks) Trigger(ctx context.Context, ev webhook.Event) error {
	now := time.Now().UTC()
	_, err := h.cl.UpdateSync(ctx, func(s *api.SyncState) error {
		if s.Suspended {
			return webhook.Ignore("automatic syncs are suspended (gitorc resume, or gitorc sync to sync anyway)")
		}
		if prev, ok := receivedBefore(s, ev); ok {
			// Another manager acted on it (each handler remembers only
			// its own deliveries).
			return webhook.Ignore("delivery " + ev.Delivery + " was already received by node " + prev.Node + " at " +
				prev.At.Format(time.RFC3339) + " (a replay): not acted on twice")
		}
		req := reconcile.QueueRequest(s, api.SyncRequest{ID: newRequestID(now), Trigger: api.TriggerWebhook, At: now, Revision: ev.Commit})
		reconcile.AddDelivery(s, boundDelivery(api.WebhookDelivery{At: now, Node: h.d.state.ID, Provider: string(ev.Provider), Event: ev.Name,
			Delivery: ev.Delivery, Ref: ev.Ref, Commit: ev.Commit, Status: http.StatusAccepted,
			Outcome: webhook.QueuedMessage(ev) + " (request " + req.ID + ")"}))
		return nil
	})
	return err
}

// delivered keeps a delivery the Trigger did not record on the sync
// state; refused ones at most every refusedEvery.
func (h *hooks) delivered(ctx context.Context, status int, resp webhook.Response) {
	if resp.Action == webhook.ActionQueued {
		return // recorded with its request
	}
	outcome := resp.Message
	if status >= 400 {
		h.mu.Lock()
		now := time.Now()
		if now.Sub(h.lastRefused) < refusedEvery {
			h.unrecorded++
			h.mu.Unlock()
			return
		}
		if h.unrecorded > 0 {
			outcome += fmt.Sprintf(" (and %d more refused deliveries, in the node's log only)", h.unrecorded)
		}
		h.lastRefused, h.unrecorded = now, 0
		h.mu.Unlock()
	}
	d := boundDelivery(api.WebhookDelivery{At: time.Now().UTC(), Node: h.d.state.ID, Provider: resp.Provider, Event: resp.Event,
		Delivery: resp.Delivery, Ref: resp.Ref, Commit: resp.Commit, Status: status, Outcome: outcome})
	if _, err := h.cl.UpdateSync(ctx, func(s *api.SyncState) error { reconcile.AddDelivery(s, d); return nil }); err != nil {
		h.log.Warn("keep the webhook delivery on the sync state", "err", err)
	}
}

// receivedBefore returns the delivery kept on the sync state that acted
// on ev's delivery ID, if any.
func receivedBefore(s *api.SyncState, ev webhook.Event) (api.WebhookDelivery, bool) {
	if ev.Delivery == "" {
		return api.WebhookDelivery{}, false
	}
	id := webhook.Truncate(ev.Delivery, webhook.MaxFieldBytes)
	for _, d := range s.Deliveries {
		if d.Provider == string(ev.Provider) && d.Delivery == id && d.Status == http.StatusAccepted && d.Commit == ev.Commit &&
			strings.HasPrefix(d.Outcome, "sync queued") {
			return d, true
		}
	}
	return api.WebhookDelivery{}, false
}

// boundDelivery cuts each field of a delivery kept in the replicated
// sync state to webhook.MaxFieldBytes: unauthenticated senders choose
// some of them.
func boundDelivery(d api.WebhookDelivery) api.WebhookDelivery {
	for _, f := range []*string{&d.Node, &d.Provider, &d.Event, &d.Delivery, &d.Ref, &d.Commit, &d.Outcome} {
		*f = webhook.Truncate(*f, webhook.MaxFieldBytes)
	}
	return d
}

// newRequestID returns a sync request ID that sorts by time.
func newRequestID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return "r" + now.UTC().Format("0102150405") + "-" + hex.EncodeToString(b[:])
}
