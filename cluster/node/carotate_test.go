package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/gitorc/gitorc/reconcile"
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
func caOf(t *testing.T, d *daemon) controlapi.CAReport {
	t.Helper()
	rep, err := managerClient(d).CA(context.Background())
	if err != nil {
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

// A root rotation (what gitorc ca rotate starts) on three managers and a
// worker (nodes of one host share one network plane, so one worker), a
// manager down when it starts: the rotation waits for it and the CA
// report names it; once it is back — with
// its certificate of the old root, trusting it alone, its replica behind
// — every node moves onto a certificate of the new root without its tasks
// restarting, the cluster then trusts the new root alone, the join tokens
// pin it, and a certificate of the old root is refused.
func TestCARotate_Root(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	reg := testRegistry(t, tmp)

	m1, _, mtok := firstManager(t, managerFlags(t, filepath.Join(tmp, "m1")))
	socket := socketFile(m1.dir)
	ms := joinManagers(t, m1, mtok, filepath.Join(tmp, "m2"))
	m3, err := testJoin(ctx, managerFlags(t, filepath.Join(tmp, "m3")), mtok, m1.state.Advertise)
	if err != nil {
		t.Fatal(err)
	}
	stopM3 := startNode(t, m3, "m3")
	m2 := ms[0]
	if err := storetest.WaitFor(func() bool { return voters(m1) == 3 }, 90*time.Second); err != nil {
		t.Fatalf("voters = %d, want 3", voters(m1))
	}
	tok, err := managerClient(m1).Token(ctx, "worker")
	if err != nil {
		t.Fatal(err)
	}
	w1, err := testJoin(ctx, testFlags{dataDir: filepath.Join(tmp, "w1"), insecure: []string{reg.Addr}}, tok.Token, m2.state.Advertise)
	if err != nil {
		t.Fatal(err)
	}
	startNode(t, w1, "w1")
	t.Cleanup(func() {
		// Its tasks' containers and its network plane go with it, even
		// when the test fails (cleanups run last first: before w1 stops).
		if _, err := os.Stat(stateFile(w1.dir)); err == nil {
			// As gitorc leave: the node answers once its containers stopped.
			if _, err := client.Unix(socketFile(w1.dir)).WithTimeout(LeaveDrainTimeout+time.Minute).Leave(ctx, false); err != nil {
				t.Errorf("w1 leave: %v", err)
			}
		}
		if m := mountsUnder(w1.dir); len(m) > 0 {
			t.Errorf("mounts left under w1: %v", m)
		}
	})

	// Two tasks on w1, whose processes must live through the rotation.
	n, _ := rand.Int(rand.Reader, big.NewInt(1e9))
	arg := fmt.Sprint(100000 + n.Int64())
	stack := fmt.Sprintf("services:\n  app:\n    image: %s/gitorc/busybox:1\n    command: [\"sleep\", %q]\n    deploy:\n      replicas: 2\n", reg.Addr, arg)
	file := filepath.Join(tmp, "compose.yaml")
	if err := os.WriteFile(file, []byte(stack), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, cs := mustDeployStackFile(t, socket, "r", file); !hasStepOf(cs, reconcile.KindService, "r_app", reconcile.Create) {
		t.Fatalf("deploy: the plan %+v creates no r_app", cs)
	}
	var procs map[string]string
	if err := storetest.WaitFor(func() bool {
		procs = procsByArgs(t, "sleep", arg)
		return tasksOf(t, m1.store, "r_app")["running"] == 2 && len(procs) == 2
	}, 90*time.Second); err != nil {
		t.Fatalf("tasks %v, processes %v", tasksOf(t, m1.store, "r_app"), procs)
	}
	taskIDs := func() string {
		var ids []string
		_ = m1.store.View(func(tx store.ReadTx) error {
			tasks, err := store.Find[api.Task](tx, store.All())
			for _, tk := range tasks {
				if tk.Status.State == api.TaskRunning {
					ids = append(ids, tk.ID+"@"+tk.Status.ContainerID)
				}
			}
			return err
		})
		slices.Sort(ids)
		return strings.Join(ids, ",")
	}
	before := taskIDs()
	oldRoot := m1.pki.rootCerts()[0]
	oldW1 := w1.pki.current()

	// m3 is down when the rotation starts: it holds the rotation, by name.
	stopM3()
	// As gitorc ca rotate --detach: the rotation started, not awaited.
	rep, err := managerClient(m1).RotateCA(ctx)
	if err != nil || rep.Started == nil || !*rep.Started || rep.Rotation == nil {
		t.Fatalf("ca rotate: %+v, %v", rep, err)
	}
	if err := storetest.WaitFor(func() bool {
		rep = caOf(t, m1)
		return rep.Rotation != nil && rep.Rotation.Done == 3 && rep.Rotation.Nodes == 4
	}, 60*time.Second); err != nil {
		t.Fatalf("m1, m2 and w1 did not move to the new root: %+v", rep.Rotation)
	}
	newDigest := rep.Rotation.NewRoot
	if len(rep.Rotation.Pending) != 1 || rep.Rotation.Pending[0].ID != m3.state.ID {
		t.Errorf("pending %+v, want m3 (%s) alone", rep.Rotation.Pending, m3.state.ID)
	}
	if rep.Root == newDigest {
		t.Fatal("the rotation ended without m3")
	}

	// m3 comes back and renews, and the rotation ends.
	m3, _ = restarted(t, m3.dir, "m3 again")
	if err := storetest.WaitFor(func() bool { rep = caOf(t, m1); return rep.Rotation == nil }, 90*time.Second); err != nil {
		t.Fatalf("the rotation did not end: %+v", rep.Rotation)
	}
	if rep.Root != newDigest {
		t.Fatalf("root %s after the rotation, want %s", rep.Root, newDigest)
	}
	nodes := []*daemon{m1, m2, m3, w1}
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
	// Raft carries on over the new certificates: a write through m3
	// reaches every replica.
	rotated, err := managerClient(m3).RotateToken(ctx, "worker", nil)
	if err != nil {
		t.Fatalf("a write through m3 after the rotation: %v", err)
	}
	if err := storetest.WaitFor(func() bool {
		tk, err := m2.tokens()
		return err == nil && tk.Worker.Encode() == rotated.Token
	}, 30*time.Second); err != nil {
		t.Error("a write through m3 did not reach m2")
	}

	// The tasks ran through it: same tasks, same containers, same
	// processes.
	if after := taskIDs(); after != before {
		t.Errorf("running tasks changed: %s, were %s", after, before)
	}
	if got := procsByArgs(t, "sleep", arg); fmt.Sprint(got) != fmt.Sprint(procs) {
		t.Errorf("task processes (pid: start time) %v, were %v", got, procs)
	}

	// The old root is refused: w1's old certificate (as the node that
	// held it would present it) fails the handshake, its new one passes.
	if err := renewWith(t, m1.state.Advertise, oldW1, oldRoot); err == nil {
		t.Error("a certificate of the old root was accepted after the rotation")
	}
	if err := renewWith(t, m1.state.Advertise, w1.pki.current(), newRoot); err != nil {
		t.Errorf("w1's new certificate: %v", err)
	}
	// The join tokens pin the new root; a token of the old root is refused.
	if nt, err := ca.ParseToken(rotated.Token); err != nil || nt.Digest.String() != newDigest {
		t.Errorf("worker token %v after the rotation, want it to pin %s", err, newDigest)
	}
	if _, err := testJoin(ctx, testFlags{dataDir: filepath.Join(tmp, "late")}, tok.Token, m1.state.Advertise); err == nil {
		t.Error("a join token of the old root admitted a node")
	}
	var removed reconcile.Changeset
	if plan, err := managerClient(m1).RemoveStack(ctx, "r"); err != nil {
		t.Errorf("rm: %v", err)
	} else if json.Unmarshal(plan, &removed) != nil || !removed.HasChanges() {
		t.Errorf("rm removed nothing: %s", plan)
	}
}

// A one-manager cluster rotates as soon as its manager shows a
// certificate of the new root; a second rotation works as the first; a
// node that never checks in holds a third until it is removed.
func TestCARotateOneManager(t *testing.T) {
	tmp := t.TempDir()
	m, _, _ := firstManager(t, managerFlags(t, filepath.Join(tmp, "m")))
	for i := range 2 {
		before := caOf(t, m)
		var rep controlapi.CAReport
		var err error
		// Right after bootstrap the leader may not have recorded the
		// cluster object yet.
		if storetest.WaitFor(func() bool {
			rep, err = managerClient(m).RotateCA(context.Background())
			return err == nil
		}, 30*time.Second) != nil {
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

	// A node that never checks in holds a rotation, by name; asking
	// again starts none; once it is removed it no longer counts.
	ctx := context.Background()
	ghost := &api.Node{Meta: api.Meta{ID: "ghost"}, Spec: api.NodeSpec{Role: api.RoleWorker, Availability: api.AvailabilityActive}}
	if _, err := m.store.Update(ctx, func(tx store.Tx) error { return tx.Create(ghost) }); err != nil {
		t.Fatal(err)
	}
	rep, err := managerClient(m).RotateCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := storetest.WaitFor(func() bool {
		rep = caOf(t, m)
		return rep.Rotation != nil && rep.Rotation.Done == 1 && rep.Rotation.Nodes == 2
	}, 60*time.Second); err != nil {
		t.Fatalf("the manager did not move to the new root: %+v", rep.Rotation)
	}
	if p := rep.Rotation.Pending; len(p) != 1 || p[0].ID != "ghost" {
		t.Errorf("pending %+v, want ghost", p)
	}
	again, err := managerClient(m).RotateCA(ctx)
	if err != nil || again.Started == nil || *again.Started ||
		again.Rotation == nil || again.Rotation.NewRoot != rep.Rotation.NewRoot {
		t.Errorf("rotate during a rotation: %+v, %v; want the one running", again, err)
	}
	_, err = m.store.Update(ctx, func(tx store.Tx) error {
		n, err := store.Get[api.Node](tx, "ghost")
		if err != nil {
			return err
		}
		n.RemovedAt = time.Now()
		return tx.Update(n)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := rep.Rotation.NewRoot
	if err := storetest.WaitFor(func() bool { rep = caOf(t, m); return rep.Rotation == nil }, 60*time.Second); err != nil {
		t.Fatalf("the rotation did not end once ghost was removed: %+v", rep.Rotation)
	}
	if rep.Root != want {
		t.Errorf("root %s, want %s", rep.Root, want)
	}
}
