package server

import "net/http"

// The cluster's root CA: GET /v1/ca, and POST /v1/ca/rotate, which starts
// a rotation (or reports the one running).
func (s *server) registerCA(mux *http.ServeMux) {
	root := func(fn func(r *http.Request, c CA) (any, error)) http.HandlerFunc {
		return s.handle(func(r *http.Request) (any, error) {
			if s.cfg.CA == nil {
				return nil, errNotServed("root CA")
			}
			return fn(r, s.cfg.CA)
		})
	}
	mux.HandleFunc("GET /v1/ca", root(func(r *http.Request, c CA) (any, error) { return c.CA(r.Context()) }))
	mux.HandleFunc("POST /v1/ca/rotate", root(func(r *http.Request, c CA) (any, error) { return c.RotateCA(r.Context()) }))
}
