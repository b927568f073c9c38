package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/spf13/cobra"
)

// byRemote runs the admin-cert and context commands with -o json.
const byRemote = "TestRemoteCLI"

// remoteEnv clears every setting that picks the CLI's target and gives
// the test a config directory of its own.
func remoteEnv(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("GITORC_CONFIG", dir)
	t.Setenv("GITORC_HOST", "")
	t.Setenv("GITORC_TLS_DIR", "")
	t.Setenv("GITORC_SOCKET", "")
	return dir
}

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

// The control API from elsewhere: an admin certificate issued over the
// socket opens every command on the manager's API port (status, ps,
// diff, sync, stacks, admin-cert), also on a follower and through a
// context; a worker's or a manager's certificate is refused with 403, no
// certificate with 401, an expired one at the handshake, a revoked one
// with 403 while another admin's still works.
func TestRemoteCLI(t *testing.T) {
	r := newJSONRuns(t, byRemote)
	remoteEnv(t)
	repo := newStacksRepo(t)
	c1 := repo.commit("first", map[string]string{"web/compose.yaml": webStack("registry.example/app:1", 0, "")})
	// gitopsNode's node, with an address plan of its own: the default
	// pool may be in use by tasks of other tests on this host.
	mdir := filepath.Join(t.TempDir(), "m")
	d, err := bootstrap(bootstrapFlags{dataDir: mdir, listen: freeAddr(t), raftListen: freeAddr(t), noWorker: true,
		repo: repo.dir, branch: "main", interval: time.Hour,
		plan: planFlags{taskPool: "10.231.0.0/16", vipPool: "10.232.0.0/16"}})
	if err != nil {
		t.Fatal(err)
	}
	startNode(t, d, "manager")
	socket := socketFile(mdir)
	waitSynced(t, socket, c1)
	setSuspended(t, d, true)
	host := "tcp://" + d.state.Advertise
	tmp := t.TempDir()

	// Issued over the local socket: the key stays here, 0600.
	alice := filepath.Join(tmp, "alice")
	v := r.run(t, "admin-cert issue", object("name", "serial", "not_after", "state", "dir", "managers"),
		"admin-cert", "issue", "alice", "--out", alice, "--ttl", "720h", "--socket", socket)
	if field(v, "name") != "alice" || field(v, "state") != "valid" || field(v, "dir") != alice {
		t.Errorf("admin-cert issue -o json: %v", v)
	}
	if st, err := os.Stat(filepath.Join(alice, "key.pem")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key.pem: %v, %v", st, err)
	}
	notAfter, _ := time.Parse(time.RFC3339, field(v, "not_after").(string))
	if d := time.Until(notAfter); d < 719*time.Hour || d > 721*time.Hour {
		t.Errorf("--ttl 720h gave a certificate until %s", notAfter)
	}
	if _, _, code := run(t, "admin-cert", "issue", "alice", "--out", alice, "--socket", socket); code == 0 {
		t.Error("admin-cert issue overwrote a TLS directory")
	}
	bob := filepath.Join(tmp, "bob")
	mustRun(t, "admin-cert", "issue", "bob", "--out", bob, "--socket", socket)

	remote := func(dir string, args ...string) []string {
		return append(args, "--host", host, "--tls-dir", dir)
	}
	// Reads, a diff, writes and a sync, all over the API port.
	out := mustRun(t, remote(alice, "status")...)
	if !strings.Contains(out, c1[:7]) {
		t.Errorf("remote status does not show %s:\n%s", c1[:7], out)
	}
	mustRun(t, remote(alice, "ps")...)
	mustRun(t, remote(alice, "node", "ls")...)
	if out, errOut, code := run(t, remote(alice, "diff")...); code != diffSame {
		t.Errorf("remote diff of the synced HEAD: exit %d\n%s%s", code, out, errOut)
	}
	c2 := repo.commit("second", map[string]string{"web/compose.yaml": webStack("registry.example/app:2", 0, "")})
	if out, errOut, code := run(t, remote(alice, "diff")...); code != diffDiffers || !strings.Contains(out, "registry.example/app:2") {
		t.Errorf("remote diff of a new commit: exit %d\n%s%s", code, out, errOut)
	}
	mustRun(t, remote(alice, "sync")...)
	waitSynced(t, socket, c2)
	stackFile := filepath.Join(tmp, "extra.yaml")
	if err := os.WriteFile(stackFile, []byte(webStack("busybox:1", 0, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, remote(alice, "stack", "deploy", "-c", stackFile, "extra")...)
	if specOf(t, d, "extra_app") == nil {
		t.Error("a stack deployed remotely is not in the store")
	}
	mustRun(t, remote(alice, "stack", "rm", "extra")...)
	mustFail(t, "runs on the node itself", remote(alice, "leave")...)

	// Node certificates, none, and an expired admin's.
	root, err := ca.ParseCertificatePEM(d.pki.caPEM())
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := d.clusterKey(keyCA)
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
	for name, cert := range map[string]*tls.Certificate{"manager": &d.pki.current().TLS, "worker": &worker.TLS} {
		code, body, err := rawGet(t, d.state.Advertise, root, cert)
		if err != nil || code != http.StatusForbidden || !strings.Contains(body, "not an admin certificate") ||
			!strings.Contains(body, "node certificates do not open the control API") {
			t.Errorf("a %s's certificate: %d %s %v", name, code, body, err)
		}
	}
	if code, body, err := rawGet(t, d.state.Advertise, root, nil); err != nil || code != http.StatusUnauthorized || !strings.Contains(body, "no client certificate") {
		t.Errorf("no certificate: %d %s %v", code, body, err)
	}
	alicePair, _, err := ca.LoadAdminCert(mustRead(t, alice, "cert.pem"), mustRead(t, alice, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	code, body, err := rawGet(t, d.state.Advertise, root, &alicePair)
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
	oldPair, _, err := ca.LoadAdminCert(oldPEM, key)
	if err != nil {
		t.Fatal(err)
	}
	if code, body, err := rawGet(t, d.state.Advertise, root, &oldPair); err == nil {
		t.Errorf("an expired admin certificate was answered: %d %s", code, body)
	}
	old := filepath.Join(tmp, "old")
	if err := writeTLSDir(old, d.pki.caPEM(), oldPEM, key); err != nil {
		t.Fatal(err)
	}
	mustFail(t, "expired", remote(old, "status")...)
	// The CLI refuses a node's certificate before it dials.
	nodeDir := filepath.Join(tmp, "node")
	if err := writeTLSDir(nodeDir, d.pki.caPEM(), wPEM, worker.KeyPEM()); err != nil {
		t.Fatal(err)
	}
	mustFail(t, "not an admin certificate", remote(nodeDir, "status")...)

	// Revoked by name, over the API port with bob's certificate: alice is
	// refused at once, bob is not.
	v = r.run(t, "admin-cert revoke", array("name", "serial", "revoked_at", "state"), remote(bob, "admin-cert", "revoke", "alice")...)
	if list, _ := v.([]any); len(list) != 1 || field(list[0], "state") != "revoked" {
		t.Errorf("admin-cert revoke -o json: %v", v)
	}
	mustFail(t, "was revoked", remote(alice, "status")...)
	if code, body, err := rawGet(t, d.state.Advertise, root, &alicePair); err != nil || code != http.StatusForbidden {
		t.Errorf("alice's revoked certificate: %d %s %v", code, body, err)
	}
	mustRun(t, remote(bob, "status")...)
	v = r.run(t, "admin-cert ls", array("name", "serial", "state"), "admin-cert", "ls", "--socket", socket)
	states := map[string]any{}
	for _, c := range v.([]any) {
		states[field(c, "name").(string)] = field(c, "state")
	}
	if states["alice"] != "revoked" || states["bob"] != "valid" || len(states) != 2 {
		t.Errorf("admin-cert ls: %v", v)
	}
	mustFail(t, "revoked already", "admin-cert", "revoke", "alice", "--socket", socket)
	mustFail(t, "no admin certificate named", "admin-cert", "revoke", "carol", "--socket", socket)

	// Contexts: commands without flags go to the current one.
	v = r.run(t, "context create", object("name", "host", "tls_dir", "current"), "context", "create", "prod", "--host", host, "--tls-dir", bob)
	if field(v, "host") != host || field(v, "current") != false {
		t.Errorf("context create -o json: %v", v)
	}
	mustFail(t, "needs --tls-dir", "context", "create", "bad", "--host", host)
	if v := r.run(t, "context use", object("name", "host", "current"), "context", "use", "prod"); field(v, "current") != true {
		t.Errorf("context use -o json: %v", v)
	}
	v = r.run(t, "context ls", array("name", "host", "current"), "context", "ls")
	if list := v.([]any); len(list) != 2 || field(list[0], "name") != "default" || field(list[1], "current") != true {
		t.Errorf("context ls -o json: %v", v)
	}
	if info, err := newAPIClient(newRootCmd()).Info(context.Background()); err != nil || info.Node != d.state.ID {
		t.Errorf("the current context: %v, %v", info, err)
	}
	mustRun(t, "ps")
	// --socket still wins over the context.
	if tg, err := resolveTarget(flagged(t, "--socket", socket)); err != nil || tg.socket != socket {
		t.Errorf("--socket with a current context: %+v, %v", tg, err)
	}
	t.Setenv("GITORC_HOST", host)
	if tg, err := resolveTarget(flagged(t, "--socket", socket)); err != nil || tg.host != d.state.Advertise || tg.tlsDir != bob {
		t.Errorf("GITORC_HOST with --socket and a context: %+v, %v", tg, err)
	}
	t.Setenv("GITORC_HOST", "")
	mustFail(t, "is the current one", "context", "rm", "prod")
	v = r.run(t, "context rm", array("name", "host"), "context", "rm", "--force", "prod")
	if list := v.([]any); len(list) != 1 || field(list[0], "name") != "prod" {
		t.Errorf("context rm -o json: %v", v)
	}
	if tg, err := resolveTarget(flagged(t)); err != nil || tg.socket != defaultSocket {
		t.Errorf("without contexts: %+v, %v", tg, err)
	}

	// A follower serves the API port too; its writes reach the leader.
	tok, err := managerClient(d).Token(context.Background(), "manager")
	if err != nil {
		t.Fatal(err)
	}
	m2 := joinManagers(t, d, tok.Token, filepath.Join(tmp, "m2"))[0]
	followerHost := "tcp://" + m2.state.Advertise
	// A voter has caught up: its replica knows where the leader's API is.
	if err := storetest.WaitFor(func() bool { return voters(d) == 2 }, 60*time.Second); err != nil {
		t.Fatalf("voters = %d, want 2", voters(d))
	}
	if err := storetest.WaitFor(func() bool {
		_, _, code := run(t, "status", "--host", followerHost, "--tls-dir", bob)
		return code == 0
	}, 60*time.Second); err != nil {
		t.Fatal("the follower never served status to an admin")
	}
	mustRun(t, "stack", "deploy", "-c", stackFile, "extra", "--host", followerHost, "--tls-dir", bob)
	if specOf(t, d, "extra_app") == nil {
		t.Error("a stack deployed through the follower is not in the leader's store")
	}
	mustFail(t, "was revoked", "status", "--host", followerHost, "--tls-dir", alice)
}

// flagged is a command whose persistent flags are set as args set them.
func flagged(t *testing.T, args ...string) *cobra.Command {
	t.Helper()
	root := newRootCmd()
	c, rest, err := root.Find(append([]string{"ps"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ParseFlags(rest); err != nil {
		t.Fatal(err)
	}
	return c
}

func mustRead(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseHost(t *testing.T) {
	tests := []struct{ in, addr, socket, err string }{
		{in: "tcp://10.0.0.1:4270", addr: "10.0.0.1:4270"},
		{in: "tcp://10.0.0.1", addr: "10.0.0.1:4270"},
		{in: "manager.example:5000", addr: "manager.example:5000"},
		{in: "tcp://[::1]:4270", addr: "[::1]:4270"},
		{in: "unix:///run/gitorc.sock", socket: "/run/gitorc.sock"},
		{in: "https://x:1", err: "want tcp://"},
		{in: "tcp://", err: "want tcp://"},
		{in: "tcp://10.0.0.1:4270,tcp://10.0.0.2, 10.0.0.3:5000", addr: "10.0.0.1:4270,10.0.0.2:4270,10.0.0.3:5000"},
		{in: "tcp://10.0.0.1,unix:///run/gitorc.sock", err: "cannot be one of a list"},
		{in: "tcp://10.0.0.1,", err: "want tcp://"},
	}
	for _, tc := range tests {
		addr, socket, err := parseHosts(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || addr != tc.addr || socket != tc.socket {
			t.Errorf("%s: %q %q %v", tc.in, addr, socket, err)
		}
	}
}
