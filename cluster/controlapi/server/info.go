package server

import (
	"net/http"
)

// GET /v1/info: the node that answers, its role, and the leader.
func (s *server) registerInfo(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/info", s.handle(func(r *http.Request) (any, error) {
		if s.cfg.Info == nil {
			return nil, errNotServed("node information")
		}
		return s.cfg.Info(r.Context()), nil
	}))
}

// RegisterLeave adds POST /v1/leave[?force=1] to mux: the node-local
// endpoint every node's control socket serves, workers' too (which serve
// no other API), and never the API port.
func RegisterLeave(mux *http.ServeMux, l Leaver) {
	s := &server{}
	s.fill()
	mux.HandleFunc("POST /v1/leave", s.handle(func(r *http.Request) (any, error) {
		return l.Leave(r.Context(), r.URL.Query().Get("force") == "1")
	}))
}
