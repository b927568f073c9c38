package node

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/server"
	"github.com/gitorc/gitorc/cluster/store"
)

// Admin certificates: gitorc admin-cert issue makes a key and a CSR on
// the admin's side and has a manager sign it with the cluster's CA; the
// store records every certificate issued (api.AdminCert, by serial), and
// a revocation marks its record, which every manager checks on every
// request of the API port (adminapi.go).

func reportAdminCert(c *api.AdminCert, now time.Time) controlapi.AdminCertReport {
	r := controlapi.AdminCertReport{Name: c.Name, Serial: c.ID, NotBefore: c.NotBefore, NotAfter: c.NotAfter, RevokedAt: c.RevokedAt, State: "valid"}
	switch {
	case c.Revoked():
		r.State = "revoked"
	case now.After(c.NotAfter):
		r.State = "expired"
	}
	return r
}

// adminCertKeep is how long the record of an expired certificate stays
// listed before an issue prunes it.
const adminCertKeep = 30 * 24 * time.Hour

// IssueAdminCert is POST /v1/admin-certs: the cluster's CA signs the
// request's CSR, and the certificate is recorded before it is handed out.
func (n nodeAPI) IssueAdminCert(ctx context.Context, req controlapi.AdminIssueRequest) (controlapi.AdminIssued, error) {
	d := n.d
	fail := func(code int, err error) (controlapi.AdminIssued, error) {
		return controlapi.AdminIssued{}, server.WithStatus(code, err)
	}
	var ttl time.Duration
	if req.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(req.TTL); err != nil || ttl <= 0 {
			return fail(http.StatusBadRequest, fmt.Errorf("ttl %q: want a positive duration such as 720h", req.TTL))
		}
	}
	sg, err := d.signer()
	if err != nil {
		return fail(http.StatusServiceUnavailable, fmt.Errorf("this manager cannot issue certificates yet: %w", err))
	}
	certPEM, id, err := sg.root.IssueAdmin([]byte(req.CSR), req.Name, ttl)
	if err != nil {
		return fail(http.StatusBadRequest, err)
	}
	certPEM = append(certPEM, sg.chain...)
	rec := &api.AdminCert{Meta: api.Meta{ID: id.Serial}, Name: id.Name, NotBefore: id.NotBefore, NotAfter: id.NotAfter}
	now := time.Now()
	_, err = d.store.Update(ctx, func(tx store.Tx) error {
		old, err := store.Find[api.AdminCert](tx, store.All())
		if err != nil {
			return err
		}
		for _, o := range old {
			if now.After(o.NotAfter.Add(adminCertKeep)) {
				if err := tx.Delete(store.KindAdminCert, o.ID, o.Version); err != nil {
					return err
				}
			}
		}
		return tx.Create(rec)
	})
	if err != nil {
		// The certificate is not handed out unless it is on record.
		return fail(http.StatusServiceUnavailable, fmt.Errorf("record the admin certificate: %w", err))
	}
	d.log.Info("admin certificate issued", "name", id.Name, "serial", id.Serial, "not_after", id.NotAfter)
	return controlapi.AdminIssued{AdminCertReport: reportAdminCert(rec, now), Cert: string(certPEM),
		CA: string(d.pki.caPEM()), Managers: d.managerAddrs()}, nil
}

// AdminCerts is GET /v1/admin-certs.
func (n nodeAPI) AdminCerts(context.Context) ([]controlapi.AdminCertReport, error) {
	var recs []*api.AdminCert
	err := n.d.store.View(func(tx store.ReadTx) error {
		var err error
		recs, err = store.Find[api.AdminCert](tx, store.All())
		return err
	})
	if err != nil {
		return nil, unavailable(err)
	}
	return adminReports(recs, time.Now()), nil
}

// RevokeAdminCert is POST /v1/admin-certs/revoke: by serial, or every
// certificate of a name.
func (n nodeAPI) RevokeAdminCert(ctx context.Context, cert string) ([]controlapi.AdminCertReport, error) {
	now := time.Now().UTC()
	var revoked []*api.AdminCert
	err := store.RetryConflicts(3, func() error {
		revoked = nil
		_, err := n.d.store.Update(ctx, func(tx store.Tx) error {
			matched, err := matchAdminCerts(tx, cert)
			if err != nil {
				return err
			}
			for _, c := range matched {
				if c.Revoked() {
					continue
				}
				c.RevokedAt = now
				if err := tx.Update(c); err != nil {
					return err
				}
				revoked = append(revoked, c)
			}
			if len(revoked) == 0 {
				return &httpErr{code: http.StatusConflict, msg: fmt.Sprintf("every admin certificate %s names is revoked already", cert)}
			}
			return nil
		})
		return err
	})
	var he *httpErr
	switch {
	case errors.As(err, &he):
		return nil, server.WithStatus(he.code, he)
	case err != nil:
		return nil, unavailable(err)
	}
	for _, c := range revoked {
		n.d.log.Info("admin certificate revoked", "name", c.Name, "serial", c.ID)
	}
	return adminReports(revoked, now), nil
}

// httpErr is an answer's status and message, out of a transaction.
type httpErr struct {
	code int
	msg  string
}

func (e *httpErr) Error() string { return e.msg }

// matchAdminCerts finds the records a revocation names: the one with
// that serial (hex, any case, with or without colons), else every one of
// that name.
func matchAdminCerts(tx store.ReadTx, what string) ([]*api.AdminCert, error) {
	if n, ok := new(big.Int).SetString(strings.ReplaceAll(strings.ToLower(what), ":", ""), 16); ok {
		c, err := store.Get[api.AdminCert](tx, n.Text(16))
		if err == nil {
			return []*api.AdminCert{c}, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	cs, err := store.Find[api.AdminCert](tx, store.ByName(what))
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, &httpErr{code: http.StatusNotFound, msg: fmt.Sprintf("no admin certificate named %s or with that serial: see gitorc admin-cert ls", what)}
	}
	return cs, nil
}

// adminReports lists records by name, then expiry.
func adminReports(recs []*api.AdminCert, now time.Time) []controlapi.AdminCertReport {
	out := make([]controlapi.AdminCertReport, 0, len(recs))
	for _, c := range recs {
		out = append(out, reportAdminCert(c, now))
	}
	slices.SortFunc(out, func(a, b controlapi.AdminCertReport) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return a.NotAfter.Compare(b.NotAfter)
	})
	return out
}
