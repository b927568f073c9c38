package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/gitorc/gitorc/cluster/controlapi"
)

// The cluster's unlock key (to the root-only socket and admin
// certificates, as the rest of the API), its rotation, and autolock on or
// off. A locked manager serves POST /v1/unlock on its socket alone (the
// node's, before it has a store); an unlocked one refuses it here.
func (s *server) registerAutolock(mux *http.ServeMux) {
	lock := func(fn func(r *http.Request, al Autolock) (any, error)) http.HandlerFunc {
		return s.handle(func(r *http.Request) (any, error) {
			if s.cfg.Autolock == nil {
				return nil, errNotServed("unlock key")
			}
			return fn(r, s.cfg.Autolock)
		})
	}
	mux.HandleFunc("GET /v1/unlock-key", lock(func(r *http.Request, al Autolock) (any, error) {
		return al.UnlockKey(r.Context())
	}))
	mux.HandleFunc("POST /v1/unlock-key/rotate", lock(func(r *http.Request, al Autolock) (any, error) {
		return al.RotateUnlockKey(r.Context())
	}))
	mux.HandleFunc("POST /v1/autolock", lock(func(r *http.Request, al Autolock) (any, error) {
		var req controlapi.AutolockRequest
		if err := decodeBody(r, &req, 4<<10, false, ""); err != nil {
			return nil, err
		}
		return al.SetAutolock(r.Context(), req.Autolock)
	}))
	mux.HandleFunc("POST /v1/unlock", s.handle(func(*http.Request) (any, error) {
		return nil, WithStatus(http.StatusConflict, errors.New("this manager is not locked"))
	}))
}

// LockedHandler is a locked manager's control socket, before it has a
// store: POST /v1/unlock gives unlock the key (UnlockRequest), then done
// the answer once it is written; every other call answers 503 locked.
func LockedHandler(unlock func(ctx context.Context, key string) (controlapi.UnlockReport, error), done func(controlapi.UnlockReport), locked error) http.Handler {
	s := &server{}
	s.fill()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/unlock", func(w http.ResponseWriter, r *http.Request) {
		var req controlapi.UnlockRequest
		if err := decodeBody(r, &req, 4<<10, false, "unlock: "); err != nil {
			s.answer(w, r, nil, err)
			return
		}
		rep, err := unlock(r.Context(), req.Key)
		s.answer(w, r, rep, err)
		if err == nil {
			done(rep)
		}
	})
	mux.HandleFunc("/", s.handle(func(*http.Request) (any, error) {
		return nil, WithStatus(http.StatusServiceUnavailable, locked)
	}))
	return mux
}
