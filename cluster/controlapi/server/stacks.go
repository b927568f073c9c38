package server

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gitorc/gitorc/cluster/controlapi"
)

// The stacks deployed by hand: PUT and DELETE /v1/stacks/{name}.
func (s *server) registerStacks(mux *http.ServeMux) {
	mux.HandleFunc("PUT /v1/stacks/{name}", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Stacks == nil {
			s.answer(w, r, nil, errNotServed("stack deploys"))
			return
		}
		var req controlapi.DeployRequest
		if err := decodeBody(r, &req, 64<<20, false, "bad request: "); err != nil {
			s.answer(w, r, nil, err)
			return
		}
		plan, err := s.cfg.Stacks.DeployStack(r.Context(), r.PathValue("name"), req)
		var pe *PlanError
		if errors.As(err, &pe) {
			// The plan goes with the refusal: its problems are what a
			// script wants (gitorc stack deploy -o json).
			writeJSON(w, http.StatusConflict, struct {
				Error string          `json:"error"`
				Plan  json.RawMessage `json:"plan"`
			}{pe.Error(), orNull(pe.Plan)})
			return
		}
		s.answer(w, r, plan, err)
	})
	mux.HandleFunc("DELETE /v1/stacks/{name}", s.handle(func(r *http.Request) (any, error) {
		if s.cfg.Stacks == nil {
			return nil, errNotServed("stack deploys")
		}
		return s.cfg.Stacks.RemoveStack(r.Context(), r.PathValue("name"))
	}))
}

// orNull is raw JSON, null when empty.
func orNull(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}
