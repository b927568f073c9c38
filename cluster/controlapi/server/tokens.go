package server

import (
	"net/http"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// The join tokens: GET /v1/tokens/{role}, POST .../rotate[?ttl=D] and
// .../ttl?ttl=D (0: the token never expires).
func (s *server) registerTokens(mux *http.ServeMux) {
	token := func(rotate, write bool) http.HandlerFunc {
		return s.handle(func(r *http.Request) (any, error) {
			if s.cfg.Tokens == nil {
				return nil, errNotServed("join tokens")
			}
			role, err := api.ParseNodeRole(r.PathValue("role"))
			if err != nil {
				return nil, WithStatus(http.StatusBadRequest, err)
			}
			// ?ttl=D sets when the token stops admitting nodes, from now
			// (0: never); a rotated token starts without one.
			var ttl *time.Duration
			if q := r.URL.Query().Get("ttl"); q != "" && write {
				v, err := time.ParseDuration(q)
				if err != nil || v < 0 {
					return nil, statusf(http.StatusBadRequest, "--ttl %q: want a duration such as 24h, 0 for none", q)
				}
				ttl = &v
			}
			return s.cfg.Tokens.Token(r.Context(), role, rotate, ttl)
		})
	}
	mux.HandleFunc("GET /v1/tokens/{role}", token(false, false))
	mux.HandleFunc("POST /v1/tokens/{role}/rotate", token(true, true))
	ttl := token(false, true)
	mux.HandleFunc("POST /v1/tokens/{role}/ttl", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("ttl") == "" {
			s.answer(w, r, nil, statusf(http.StatusBadRequest, "give ?ttl=D"))
			return
		}
		ttl(w, r)
	})
}
