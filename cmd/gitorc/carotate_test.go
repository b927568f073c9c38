package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// procsByArgs returns the start time (clock ticks since boot, field 22
// of /proc/PID/stat) of every process whose command line is args: a
// process restarted, even under the same PID, starts later.
func procsByArgs(t *testing.T, args ...string) map[string]string {
	t.Helper()
	want := []byte(strings.Join(args, "\x00") + "\x00")
	out := map[string]string{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Equal(cmdline, want) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command may hold spaces and parentheses: fields count from
		// the last ')'.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) > 19 {
			out[e.Name()] = f[19]
		}
	}
	return out
}

// caOf is the CA report of a manager's control API.
func caOf(t *testing.T, d *daemon) caReportOf {
	t.Helper()
	var rep caReportOf
	if err := managerClient(d).call(context.Background(), "GET", "/v1/ca", nil, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// renewWith calls a manager's Renew with cert, trusting roots: what any
// node's check-in does.
func renewWith(t *testing.T, addr string, cert *ca.NodeCert, roots ...*x509.Certificate) error {
	t.Helper()
	cfg, err := ca.TLSConfig{Roots: func() []*x509.Certificate { return roots }, Cert: cert,
		PeerRoles: []api.NodeRole{api.RoleManager}}.Client()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(addr, append(wire.DialOptions(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = wire.Renew(ctx, cc, &wire.RenewRequest{})
	return err
}

// gitorc ca rotate on a manager and two workers, one of them down when it
// starts: the rotation waits for it and says so; once it is back, every
// node moves onto a certificate of the new root without its tasks
// restarting, the cluster then trusts the new root alone, the join
// tokens pin it, and a certificate of the old root is refused.
func TestCARotate_Root(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	reg := testRegistry(t, tmp)

	mgr, _, _ := firstManager(t, managerFlags(t, filepath.Join(tmp, "m")))
	socket := socketFile(mgr.dir)
	var tok map[string]string
	if err := managerClient(mgr).call(ctx, "GET", "/v1/tokens/worker", nil, &tok); err != nil {
		t.Fatal(err)
	}
	var workers []*daemon
	stops := map[string]func(){}
	for _, name := range []string{"w1", "w2"} {
		w, err := join(ctx, bootstrapFlags{dataDir: filepath.Join(tmp, name), insecure: []string{reg.Addr}}, tok["token"], mgr.state.Advertise)
		if err != nil {
			t.Fatal(err)
		}
		stops[name] = startNode(t, w, name)
		workers = append(workers, w)
	}
	w1, w2 := workers[0], workers[1]

	// Two tasks on w1, whose processes must live through the rotation.
	n, _ := rand.Int(rand.Reader, big.NewInt(1e9))
	arg := fmt.Sprint(100000 + n.Int64())
	stack := fmt.Sprintf("services:\n  app:\n    image: %s/gitorc/busybox:1\n    command: [\"sleep\", %q]\n    deploy:\n      replicas: 2\n"+
		"      placement:\n        constraints: [\"node.id == %s\"]\n", reg.Addr, arg, w1.state.ID)
	file := filepath.Join(tmp, "compose.yaml")
	if err := os.WriteFile(file, []byte(stack), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := run(t, "stack", "deploy", "--socket", socket, "-c", file, "r"); code != 0 {
		t.Fatalf("deploy: %s", errOut)
	}
	var procs map[string]string
	if err := storetest.WaitFor(func() bool {
		procs = procsByArgs(t, "sleep", arg)
		return tasksOf(t, mgr.store, "r_app")["running"] == 2 && len(procs) == 2
	}, 90*time.Second); err != nil {
		t.Fatalf("tasks %v, processes %v", tasksOf(t, mgr.store, "r_app"), procs)
	}
	taskIDs := func() []string {
		var ids []string
		_ = mgr.store.View(func(tx store.ReadTx) error {
			tasks, err := store.Find[api.Task](tx, store.All())
			for _, tk := range tasks {
				if tk.Status.State == api.TaskRunning {
					ids = append(ids, tk.ID+"@"+tk.Status.ContainerID)
				}
			}
			return err
		})
		return ids
	}
	before := strings.Join(taskIDs(), ",")

	oldRoot := mgr.pki.rootCerts()[0]
	oldW1 := w1.pki.current()

	// w2 is down when the rotation starts: it holds the rotation, by name.
	stops["w2"]()
	out, errOut, code := run(t, "ca", "rotate", "--detach", "--socket", socket)
	if code != 0 || !strings.Contains(out, "rotation started") {
		t.Fatalf("ca rotate --detach: %d %s %s", code, out, errOut)
	}
	var rep caReportOf
	if err := storetest.WaitFor(func() bool {
		rep = caOf(t, mgr)
		return rep.Rotation != nil && rep.Rotation.Done == 2 && rep.Rotation.Nodes == 3
	}, 60*time.Second); err != nil {
		t.Fatalf("the manager and w1 did not move to the new root: %+v", rep.Rotation)
	}
	newDigest := rep.Rotation.NewRoot
	if len(rep.Rotation.Pending) != 1 || rep.Rotation.Pending[0].ID != w2.state.ID {
		t.Errorf("pending %+v, want w2 (%s) alone", rep.Rotation.Pending, w2.state.ID)
	}
	if out, _, _ := run(t, "ca", "--socket", socket); !strings.Contains(out, "2/3") || !strings.Contains(out, w2.state.ID) {
		t.Errorf("gitorc ca does not say it waits for w2:\n%s", out)
	}
	if rep.Root == newDigest || caOf(t, mgr).Rotation == nil {
		t.Fatal("the rotation ended without w2")
	}

	// w2 comes back, with its certificate of the old root and trusting it
	// alone; it renews, and the rotation ends.
	w2, _ = restarted(t, w2.dir, "w2 again")
	if err := storetest.WaitFor(func() bool { rep = caOf(t, mgr); return rep.Rotation == nil }, 90*time.Second); err != nil {
		t.Fatalf("the rotation did not end: %+v", rep.Rotation)
	}
	if rep.Root != newDigest {
		t.Fatalf("root %s after the rotation, want %s", rep.Root, newDigest)
	}
	nodes := []*daemon{mgr, w1, w2}
	var newRoot *x509.Certificate
	if err := storetest.WaitFor(func() bool {
		for _, d := range nodes {
			r := d.pki.rootCerts()
			if len(r) != 1 || ca.DigestOf(r[0]).String() != newDigest {
				return false
			}
			newRoot = r[0]
		}
		return true
	}, 60*time.Second); err != nil {
		t.Fatal("not every node trusts the new root alone")
	}
	for _, d := range nodes {
		cur := d.pki.current()
		chain := append([]*x509.Certificate{cur.Leaf}, cur.Intermediates()...)
		if _, err := ca.VerifyNodeChain(chain, []*x509.Certificate{newRoot}, time.Now()); err != nil {
			t.Errorf("%s's certificate under the new root: %v", d.state.ID, err)
		}
		if ca.SignedBy(cur.Leaf, oldRoot) {
			t.Errorf("%s still has a certificate of the old root", d.state.ID)
		}
		onDisk, err := loadPKI(d.dir)
		if err != nil {
			t.Fatal(err)
		}
		if !onDisk.current().Leaf.Equal(cur.Leaf) || !bytes.Equal(onDisk.caPEM(), ca.EncodeCertificatesPEM(newRoot)) {
			t.Errorf("%s: the certificate or the roots on disk are not those in use", d.state.ID)
		}
	}

	// The tasks ran through it: same tasks, same containers, same
	// processes.
	if after := strings.Join(taskIDs(), ","); after != before {
		t.Errorf("running tasks changed: %s, were %s", after, before)
	}
	if got := procsByArgs(t, "sleep", arg); fmt.Sprint(got) != fmt.Sprint(procs) {
		t.Errorf("task processes (pid: start time) %v, were %v", got, procs)
	}

	// The old root is refused: w1's old certificate (as the node that
	// held it would present it) fails the handshake, its new one passes.
	if err := renewWith(t, mgr.state.Advertise, oldW1, oldRoot); err == nil {
		t.Error("a certificate of the old root was accepted after the rotation")
	}
	if err := renewWith(t, mgr.state.Advertise, w1.pki.current(), newRoot); err != nil {
		t.Errorf("w1's new certificate: %v", err)
	}
	// The join tokens pin the new root; the old token is refused.
	var tok2 map[string]string
	if err := managerClient(mgr).call(ctx, "GET", "/v1/tokens/worker", nil, &tok2); err != nil {
		t.Fatal(err)
	}
	if nt, err := ca.ParseToken(tok2["token"]); err != nil || nt.Digest.String() != newDigest {
		t.Errorf("worker token %v after the rotation, want it to pin %s", err, newDigest)
	}
	if _, err := join(ctx, bootstrapFlags{dataDir: filepath.Join(tmp, "late")}, tok["token"], mgr.state.Advertise); err == nil {
		t.Error("a join token of the old root admitted a node")
	}
	if _, _, code := run(t, "stack", "rm", "--socket", socket, "r"); code != 0 {
		t.Error("rm failed")
	}
}

// A one-manager cluster rotates as soon as its manager shows a
// certificate of the new root; a second rotation works as the first.
func TestCARotateOneManager(t *testing.T) {
	tmp := t.TempDir()
	m, _, _ := firstManager(t, managerFlags(t, filepath.Join(tmp, "m")))
	for i := range 2 {
		before := caOf(t, m)
		var rep caReportOf
		if err := managerClient(m).call(context.Background(), "POST", "/v1/ca/rotate", nil, &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Started == nil || !*rep.Started || rep.Rotation == nil || rep.Rotation.Nodes != 1 || rep.Root != before.Root {
			t.Fatalf("rotation %d: %+v", i, rep)
		}
		want := rep.Rotation.NewRoot
		if err := storetest.WaitFor(func() bool { rep = caOf(t, m); return rep.Rotation == nil }, 60*time.Second); err != nil {
			t.Fatalf("rotation %d did not end: %+v", i, rep.Rotation)
		}
		if rep.Root != want || rep.RotatedAt.IsZero() {
			t.Errorf("rotation %d: root %s, want %s", i, rep.Root, want)
		}
		// What a restart would load: the certificate in use, with the
		// cross-signed root after it, and its key.
		onDisk, err := loadPKI(m.dir)
		if err != nil {
			t.Fatalf("rotation %d: the node's files: %v", i, err)
		}
		if cur := m.pki.current(); !onDisk.current().Leaf.Equal(cur.Leaf) || len(onDisk.current().Intermediates()) != 1 {
			t.Errorf("rotation %d: the certificate on disk is not the one in use, with the cross-signed root", i)
		}
	}
}
