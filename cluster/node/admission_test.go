package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// rawGet calls GET /v1/info on a manager's API port with cert (none when
// nil) and returns the status and body, or the handshake's error.
func rawGet(t *testing.T, addr string, root *x509.Certificate, cert *tls.Certificate) (int, string, error) {
	t.Helper()
	var pair tls.Certificate
	if cert != nil {
		pair = *cert
	}
	cfg, err := ca.AdminClientConfig(root, pair, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cert == nil {
		cfg.GetClientCertificate = nil
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("https://" + addr + "/v1/info")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// issueAdmin has the manager sign an admin certificate for name, as
// gitorc admin-cert issue does.
func issueAdmin(t *testing.T, c *client.Client, name string) tls.Certificate {
	t.Helper()
	csr, key, err := ca.NewAdminCSR(name)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.IssueAdminCert(context.Background(), controlapi.AdminIssueRequest{Name: name, CSR: string(csr)})
	if err != nil {
		t.Fatal(err)
	}
	pair, _, err := ca.LoadAdminCert([]byte(out.Cert), key)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// A manager's API port answers admins only: a worker's or a manager's
// certificate is refused with 403, no certificate with 401, an expired
// admin certificate at the handshake, a revoked one with 403 while
// another admin's still works.
func TestAPIPortAdmission(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	d, err := testBootstrap(testFlags{dataDir: dir, listen: freeAddr(t), raftListen: freeAddr(t), noWorker: true})
	if err != nil {
		t.Fatal(err)
	}
	startNode(t, d, "manager")
	c := client.Unix(socketOf(d))
	if err := storetest.WaitFor(func() bool {
		info, err := c.Info(context.Background())
		return err == nil && info.IsLeader
	}, 60*time.Second); err != nil {
		t.Fatal("the manager never led")
	}
	var caKey []byte
	if err := storetest.WaitFor(func() bool {
		caKey, err = d.clusterKey(keyCA)
		return err == nil
	}, 60*time.Second); err != nil {
		t.Fatalf("the cluster's CA key: %v", err)
	}
	root, err := ca.ParseCertificatePEM(d.pki.caPEM())
	if err != nil {
		t.Fatal(err)
	}
	rootCA, err := ca.LoadRootCA(ca.DefaultConfig(), d.pki.caPEM(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	csr, key, err := ca.NewCSR("w-remote")
	if err != nil {
		t.Fatal(err)
	}
	wPEM, err := rootCA.Issue(csr, "w-remote", api.RoleWorker)
	if err != nil {
		t.Fatal(err)
	}
	worker, err := ca.LoadNodeCert(wPEM, key, root)
	if err != nil {
		t.Fatal(err)
	}
	addr := d.state.Advertise
	for name, cert := range map[string]*tls.Certificate{"manager": &d.pki.current().TLS, "worker": &worker.TLS} {
		code, body, err := rawGet(t, addr, root, cert)
		if err != nil || code != http.StatusForbidden || !strings.Contains(body, "not an admin certificate") ||
			!strings.Contains(body, "node certificates do not open the control API") {
			t.Errorf("a %s's certificate: %d %s %v", name, code, body, err)
		}
	}
	if code, body, err := rawGet(t, addr, root, nil); err != nil || code != http.StatusUnauthorized || !strings.Contains(body, "no client certificate") {
		t.Errorf("no certificate: %d %s %v", code, body, err)
	}
	alice, bob := issueAdmin(t, c, "alice"), issueAdmin(t, c, "bob")
	code, body, err := rawGet(t, addr, root, &alice)
	var info controlapi.Info
	if err != nil || code != http.StatusOK || json.Unmarshal([]byte(body), &info) != nil || !info.IsLeader {
		t.Errorf("alice's certificate: %d %s %v", code, body, err)
	}
	past := time.Now().Add(-48 * time.Hour)
	oldCA, err := ca.LoadRootCA(ca.Config{Now: func() time.Time { return past }}, d.pki.caPEM(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	csr, key, err = ca.NewAdminCSR("old")
	if err != nil {
		t.Fatal(err)
	}
	oldPEM, _, err := oldCA.IssueAdmin(csr, "old", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	old, _, err := ca.LoadAdminCert(oldPEM, key)
	if err != nil {
		t.Fatal(err)
	}
	if code, body, err := rawGet(t, addr, root, &old); err == nil {
		t.Errorf("an expired admin certificate was answered: %d %s", code, body)
	}
	if _, err := c.RevokeAdminCert(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	if code, body, err := rawGet(t, addr, root, &alice); err != nil || code != http.StatusForbidden || !strings.Contains(body, "revoked") {
		t.Errorf("alice's revoked certificate: %d %s %v", code, body, err)
	}
	if code, body, err := rawGet(t, addr, root, &bob); err != nil || code != http.StatusOK {
		t.Errorf("bob's certificate after alice's revocation: %d %s %v", code, body, err)
	}
}

// Fault detection's timing reaches Raft as one timeout for heartbeats
// and elections; none recorded leaves the store's defaults.
func TestTimingRaft(t *testing.T) {
	r := Timing{RaftTimeout: api.Duration(300 * time.Millisecond)}.raft()
	if r.HeartbeatTimeout != 300*time.Millisecond || r.ElectionTimeout != 300*time.Millisecond {
		t.Errorf("raft tuning %+v, want 300ms heartbeat and election timeouts", r)
	}
	if r := (Timing{}).raft(); r != (store.RaftTuning{}) {
		t.Errorf("no timing: %+v, want the store's defaults (zero)", r)
	}
}
