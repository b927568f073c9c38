package server

import (
	"errors"
	"net/http"

	"github.com/gitorc/gitorc/cluster/controlapi"
)

// The endpoints that plan with a clone of the source: diff and rollback.
func (s *server) registerDiff(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/sync/diff", s.handle(func(r *http.Request) (any, error) {
		df, err := s.differ()
		if err != nil {
			return nil, err
		}
		var req controlapi.DiffRequest
		if err := decodeBody(r, &req, 1<<20, false, "bad request: "); err != nil {
			return nil, err
		}
		return df.Diff(r.Context(), req)
	}))
	mux.HandleFunc("POST /v1/sync/rollback", s.handle(func(r *http.Request) (any, error) {
		df, err := s.differ()
		if err != nil {
			return nil, err
		}
		var req controlapi.RollbackRequest
		if err := decodeBody(r, &req, 1<<16, false, "bad request: "); err != nil {
			return nil, err
		}
		if req.Revision == "" {
			return nil, WithStatus(http.StatusBadRequest, errors.New("which revision? give --to REV (gitorc history lists them)"))
		}
		return df.Rollback(r.Context(), req)
	}))
}

func (s *server) differ() (Differ, error) {
	if s.cfg.Differ == nil {
		return nil, errNotServed("diffs")
	}
	return s.cfg.Differ, nil
}
