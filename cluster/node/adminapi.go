package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/store"
)

// The control API over the network: every manager serves it on its API
// port (apiport.go) over mutual TLS, to admin certificates only
// (gitorc admin-cert issue). A request without a client certificate is
// answered 401, one with a node's certificate 403, one with a revoked
// admin certificate 403; a certificate of another CA or past its expiry
// fails the handshake. The handlers are the control socket's, except the
// node-local ones (leave, pprof).

// leaderHeader names the leader on a follower's answers.
const leaderHeader = controlapi.LeaderHeader

// serveAdmin serves the control API to admins on the API port's admin
// connections until ctx ends.
func (d *daemon) serveAdmin(ctx context.Context, ln net.Listener, api http.Handler) error {
	cfg, err := ca.TLSConfig{Roots: d.pki.rootCerts, Current: d.pki.current}.AdminServer()
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: d.adminOnly(api), ReadHeaderTimeout: 10 * time.Second,
		// HTTP/1.1 only: h2 on this port is gRPC's.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		// Refused handshakes (another CA, an expired certificate) are the
		// client's to report.
		ErrorLog: slog.NewLogLogger(d.log.With("component", "admin api").Handler(), slog.LevelDebug)}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), socketShutdownGrace)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			_ = srv.Close()
		}
	}()
	if err := srv.Serve(tls.NewListener(ln, cfg)); err != nil && !errors.Is(err, http.ErrServerClosed) && ctx.Err() == nil {
		return err
	}
	return nil
}

// adminOnly lets through requests of admins whose certificate is not
// revoked, and names the leader on a follower's answers.
func (d *daemon) adminOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			writeJSONResponse(w, http.StatusUnauthorized, map[string]string{"error": "the control API is served over mutual TLS only"})
			return
		}
		id, err := ca.AdminPeer(*r.TLS)
		switch {
		case errors.Is(err, ca.ErrNoClientCert):
			w.Header().Set("WWW-Authenticate", `Mutual-TLS realm="gitorc"`)
			writeJSONResponse(w, http.StatusUnauthorized, map[string]string{"error": "no client certificate: the control API admits admin certificates only " +
				"(gitorc admin-cert issue NAME --out DIR on a manager, then --tls-dir DIR)"})
			return
		case err != nil:
			writeJSONResponse(w, http.StatusForbidden, map[string]string{"error": "forbidden: " + err.Error() +
				": node certificates do not open the control API; use an admin certificate (gitorc admin-cert issue)"})
			return
		}
		if rec, err := d.adminRecord(id.Serial); err == nil && rec.Revoked() {
			writeJSONResponse(w, http.StatusForbidden, map[string]string{"error": fmt.Sprintf("forbidden: the admin certificate %s of %s was revoked at %s",
				id.Serial, id.Name, rec.RevokedAt.UTC().Format(time.RFC3339))})
			return
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": "cannot check the certificate's revocation: " + err.Error()})
			return
		}
		if li := d.store.Leader(); !li.IsLeader && li.ID != "" {
			if addr := d.managerAddr(li); addr != "" {
				w.Header().Set(leaderHeader, addr)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// adminRecord is the store's record of an admin certificate.
func (d *daemon) adminRecord(serial string) (*api.AdminCert, error) {
	var rec *api.AdminCert
	err := d.store.View(func(tx store.ReadTx) error {
		var err error
		rec, err = store.Get[api.AdminCert](tx, serial)
		return err
	})
	return rec, err
}
