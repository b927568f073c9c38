package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/node"
	"github.com/gitorc/gitorc/cluster/node/nodetest"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/gitorc/gitorc/reconcile/gittest"
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

// The control API from elsewhere: an admin certificate issued over the
// socket opens every command on the manager's API port (status, ps,
// diff, sync, stacks, admin-cert), also on a follower and through a
// context; the CLI refuses a node's certificate before it dials, and a
// revoked admin is refused while another admin's certificate still works.
// (What the API port admits and refuses, certificate by certificate, is
// the node's test TestAPIPortAdmission.)
func TestRemoteCLI(t *testing.T) {
	r := newJSONRuns(t, byRemote)
	remoteEnv(t)
	repo := gittest.New(t, filepath.Join(t.TempDir(), "stacks"))
	c1 := repo.Commit("first", map[string]string{"web/compose.yaml": webStack("registry.example/app:1", 0, "")})
	mdir := filepath.Join(t.TempDir(), "m")
	d := nodetest.Bootstrap(t, mdir, node.Bootstrap{Settings: node.Settings{NoWorker: true},
		Source: &api.SourceSpec{URL: repo.Dir, Ref: "main", Interval: api.Duration(time.Hour)}})
	socket := d.Socket
	waitSynced(t, socket, c1)
	if _, err := d.Client().Suspend(context.Background()); err != nil {
		t.Fatal(err)
	}
	host := "tcp://" + d.Report.Advertise
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
	c2 := repo.Commit("second", map[string]string{"web/compose.yaml": webStack("registry.example/app:2", 0, "")})
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
	if _, err := d.Client().Service(context.Background(), "extra_app"); err != nil {
		t.Errorf("a stack deployed remotely is not in the store: %v", err)
	}
	mustRun(t, remote(alice, "stack", "rm", "extra")...)
	mustFail(t, "runs on the node itself", remote(alice, "leave")...)

	// The CLI refuses a node's certificate before it dials (the node's
	// tests check that the API port refuses it too).
	caPEM := mustRead(t, filepath.Join(mdir, "pki"), "ca.pem")
	nodeDir := filepath.Join(tmp, "node")
	if err := writeTLSDir(nodeDir, caPEM, mustRead(t, filepath.Join(mdir, "pki"), "node.pem"), mustRead(t, filepath.Join(mdir, "pki"), "node-key.pem")); err != nil {
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
	if info, err := newAPIClient(newRootCmd()).Info(context.Background()); err != nil || info.Node != d.Report.Node {
		t.Errorf("the current context: %v, %v", info, err)
	}
	mustRun(t, "ps")
	// --socket still wins over the context.
	if tg, err := resolveTarget(flagged(t, "--socket", socket)); err != nil || tg.socket != socket {
		t.Errorf("--socket with a current context: %+v, %v", tg, err)
	}
	t.Setenv("GITORC_HOST", host)
	if tg, err := resolveTarget(flagged(t, "--socket", socket)); err != nil || tg.host != d.Report.Advertise || tg.tlsDir != bob {
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
	m2 := nodetest.Join(t, filepath.Join(tmp, "m2"), d, "manager", node.Settings{NoWorker: true})
	followerHost := "tcp://" + m2.Report.Advertise
	if err := storetest.WaitFor(func() bool {
		_, _, code := run(t, "status", "--host", followerHost, "--tls-dir", bob)
		return code == 0
	}, 60*time.Second); err != nil {
		t.Fatal("the follower never served status to an admin")
	}
	mustRun(t, "stack", "deploy", "-c", stackFile, "extra", "--host", followerHost, "--tls-dir", bob)
	if _, err := d.Client().Service(context.Background(), "extra_app"); err != nil {
		t.Errorf("a stack deployed through the follower is not in the leader's store: %v", err)
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

// The CLI refuses an expired admin certificate before it dials, and says
// which one and what to do.
func TestRemoteRefusesExpiredCert(t *testing.T) {
	remoteEnv(t)
	past := time.Now().Add(-48 * time.Hour)
	root, err := ca.NewRootCA(ca.Config{Now: func() time.Time { return past }})
	if err != nil {
		t.Fatal(err)
	}
	csr, key, err := ca.NewAdminCSR("old")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := root.IssueAdmin(csr, "old", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "old")
	if err := writeTLSDir(dir, root.CertPEM(), certPEM, key); err != nil {
		t.Fatal(err)
	}
	// Nothing listens there: a dial would fail otherwise.
	mustFail(t, "the admin certificate of old", "status", "--host", "tcp://127.0.0.1:1", "--tls-dir", dir)
	mustFail(t, "expired", "status", "--host", "tcp://127.0.0.1:1", "--tls-dir", dir)
}
