package server

import (
	"net/http"
	"strconv"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
)

// The sync endpoints: the GitOps loop's state, manual syncs, suspension,
// history. Any manager answers: requests go through the store, and the
// leader takes them.
func (s *server) registerSync(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/sync", s.handle(func(r *http.Request) (any, error) {
		sy, err := s.syncer()
		if err != nil {
			return nil, err
		}
		return sy.Status(r.Context())
	}))
	mux.HandleFunc("POST /v1/sync", s.handleCode(http.StatusAccepted, func(r *http.Request) (any, error) {
		sy, err := s.syncer()
		if err != nil {
			return nil, err
		}
		return sy.RequestSync(r.Context())
	}))
	mux.HandleFunc("GET /v1/sync/requests/{id}", s.handle(func(r *http.Request) (any, error) {
		sy, err := s.syncer()
		if err != nil {
			return nil, err
		}
		return sy.SyncRequest(r.Context(), r.PathValue("id"))
	}))
	suspend := func(on bool) http.HandlerFunc {
		return s.handle(func(r *http.Request) (any, error) {
			sy, err := s.syncer()
			if err != nil {
				return nil, err
			}
			return sy.Suspend(r.Context(), on)
		})
	}
	mux.HandleFunc("POST /v1/sync/suspend", suspend(true))
	mux.HandleFunc("POST /v1/sync/resume", suspend(false))
	mux.HandleFunc("GET /v1/sync/history", s.handle(func(r *http.Request) (any, error) {
		sy, err := s.syncer()
		if err != nil {
			return nil, err
		}
		limit := 0
		if q := r.URL.Query().Get("limit"); q != "" {
			n, err := strconv.Atoi(q)
			if err != nil || n < 0 {
				return nil, statusf(http.StatusBadRequest, "limit %q: not a count", q)
			}
			limit = n
		}
		hist, err := sy.History(r.Context(), limit)
		if hist == nil && err == nil {
			hist = []api.SyncRecord{}
		}
		return hist, err
	}))
	mux.HandleFunc("PATCH /v1/source", s.handle(func(r *http.Request) (any, error) {
		sy, err := s.syncer()
		if err != nil {
			return nil, err
		}
		var p controlapi.SourcePatch
		if err := decodeBody(r, &p, 1<<20, true, "source change: "); err != nil {
			return nil, err
		}
		return sy.SetSource(r.Context(), p)
	}))
}

func (s *server) syncer() (Syncer, error) {
	if s.cfg.Syncer == nil {
		return nil, errNotServed("GitOps loop")
	}
	return s.cfg.Syncer, nil
}
