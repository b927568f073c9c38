package node

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/server"
	"github.com/gitorc/gitorc/reconcile"
)

// errNoSource answers requests that need a Git source when there is none.
var errNoSource = errors.New("this cluster follows no Git source: set one with gitorc source set --repo URL|PATH")

// RequestSync is POST /v1/sync: a manual sync queued in the sync state,
// which any manager writes and the leader takes.
func (s syncAPI) RequestSync(ctx context.Context) (api.SyncRequest, error) {
	now := time.Now().UTC()
	var req api.SyncRequest
	_, err := s.cl.UpdateSync(ctx, func(st *api.SyncState) error {
		if st.Source.URL == "" {
			return errNoSource
		}
		req = reconcile.QueueRequest(st, api.SyncRequest{ID: newRequestID(now), Trigger: api.TriggerManual, At: now})
		return nil
	})
	switch {
	case errors.Is(err, errNoSource):
		return req, server.WithStatus(http.StatusConflict, errNoSource)
	case err != nil:
		return req, unavailable(err)
	}
	return req, nil
}

// SyncRequest is GET /v1/sync/requests/{id}: with its outcome once done.
func (s syncAPI) SyncRequest(ctx context.Context, id string) (api.SyncRequest, error) {
	st, err := s.cl.Sync(ctx)
	if err != nil {
		return api.SyncRequest{}, unavailable(err)
	}
	req, ok := reconcile.FindRequest(st, id)
	if !ok {
		return req, server.Errorf(http.StatusNotFound, "sync request %s is not in the sync state (only the last finished ones are kept): see gitorc status", id)
	}
	return req, nil
}

// Suspend is POST /v1/sync/suspend and /v1/sync/resume: automatic syncs
// off or on.
func (s syncAPI) Suspend(ctx context.Context, on bool) (controlapi.Suspension, error) {
	st, err := s.cl.UpdateSync(ctx, func(st *api.SyncState) error {
		if st.Suspended == on {
			return reconcile.ErrUnchanged
		}
		st.Suspended = on
		return nil
	})
	if err != nil {
		return controlapi.Suspension{}, unavailable(err)
	}
	return controlapi.Suspension{Suspended: st.Suspended}, nil
}

// History is GET /v1/sync/history[?limit=N]: the sync records, oldest
// first (the last N with a limit).
func (s syncAPI) History(ctx context.Context, limit int) ([]api.SyncRecord, error) {
	hist, err := s.cl.History(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	if limit > 0 && len(hist) > limit {
		hist = hist[len(hist)-limit:]
	}
	return hist, nil
}
