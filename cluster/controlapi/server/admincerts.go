package server

import (
	"errors"
	"net/http"

	"github.com/gitorc/gitorc/cluster/controlapi"
)

// The admin certificates: POST /v1/admin-certs (issue), GET (list), POST
// /v1/admin-certs/revoke.
func (s *server) registerAdminCerts(mux *http.ServeMux) {
	certs := func(fn func(r *http.Request, ac AdminCerts) (any, error)) http.HandlerFunc {
		return s.handle(func(r *http.Request) (any, error) {
			if s.cfg.AdminCerts == nil {
				return nil, errNotServed("admin certificates")
			}
			return fn(r, s.cfg.AdminCerts)
		})
	}
	mux.HandleFunc("POST /v1/admin-certs", certs(func(r *http.Request, ac AdminCerts) (any, error) {
		var req controlapi.AdminIssueRequest
		if err := decodeBody(r, &req, 64<<10, true, "bad request: "); err != nil {
			return nil, err
		}
		return ac.IssueAdminCert(r.Context(), req)
	}))
	mux.HandleFunc("GET /v1/admin-certs", certs(func(r *http.Request, ac AdminCerts) (any, error) {
		return ac.AdminCerts(r.Context())
	}))
	mux.HandleFunc("POST /v1/admin-certs/revoke", certs(func(r *http.Request, ac AdminCerts) (any, error) {
		var req controlapi.AdminRevokeRequest
		if err := decodeBody(r, &req, 4<<10, false, ""); err != nil || req.Cert == "" {
			return nil, WithStatus(http.StatusBadRequest, errors.New("bad request: name the certificate to revoke by its name or serial"))
		}
		return ac.RevokeAdminCert(r.Context(), req.Cert)
	}))
}
