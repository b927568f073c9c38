package node

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storerpc"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/gitorc/gitorc/e2e/gitserver"
)

// Managers join with the manager token, become voters once caught up,
// share the cluster's keys through the store, forward writes to the
// leader, and carry on when the leader stops.
func TestJoinManagers(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	m1, stop1, token := firstManager(t, managerFlags(t, filepath.Join(tmp, "m1")))
	c1 := managerClient(m1)

	// A manager token that was rotated away no longer admits anyone.
	rotated, err := c1.RotateToken(ctx, "manager", nil)
	if err != nil {
		t.Fatal(err)
	}
	flags := func(name string) testFlags { return managerFlags(t, filepath.Join(tmp, name)) }
	if _, err := testJoin(ctx, flags("old"), token, m1.state.Advertise); err == nil || !strings.Contains(err.Error(), "join refused") {
		t.Errorf("join with a rotated token: %v, want refused", err)
	}

	ms := joinManagers(t, m1, rotated.Token, filepath.Join(tmp, "m2"), filepath.Join(tmp, "m3"))
	for _, d := range ms {
		if d.state.Role != api.RoleManager || d.pki.current().Identity.Role != api.RoleManager {
			t.Fatalf("%s joined as %s with a %s certificate", d.dir, d.state.Role, d.pki.current().Identity.Role)
		}
	}
	m2, m3 := ms[0], ms[1]
	if err := storetest.WaitFor(func() bool { return voters(m1) == 3 }, 60*time.Second); err != nil {
		t.Fatalf("voters = %d, want 3", voters(m1))
	}
	// Managers without a worker are registered drained: no task is
	// scheduled there, and a pending task does not blame them as not ready.
	for _, d := range []*daemon{m1, m2, m3} {
		var n *api.Node
		err := m1.store.View(func(tx store.ReadTx) (err error) { n, err = store.Get[api.Node](tx, d.state.ID); return err })
		if err != nil || n.Spec.Availability != api.AvailabilityDrain {
			t.Errorf("manager %s without a worker: node %+v, %v; want availability drain", d.dir, n, err)
		}
	}

	// A write on a follower is forwarded to the leader and reaches every
	// replica: the worker token rotated through m2 is m3's too.
	w2, err := managerClient(m2).RotateToken(ctx, "worker", nil)
	if err != nil {
		t.Fatalf("rotate through a follower: %v", err)
	}
	if err := storetest.WaitFor(func() bool {
		tk, err := m3.tokens()
		return err == nil && tk.Worker.Encode() == w2.Token
	}, 10*time.Second); err != nil {
		t.Error("the token rotated through m2 did not reach m3")
	}

	// A worker's certificate cannot write to the store through a manager.
	wk, err := testJoin(ctx, testFlags{dataDir: filepath.Join(tmp, "w")}, w2.Token, m2.state.Advertise)
	if err != nil {
		t.Fatal(err)
	}
	if wk.state.Role != api.RoleWorker {
		t.Fatalf("joined with the worker token as %s", wk.state.Role)
	}
	root, err := ca.ParseCertificatePEM(wk.pki.caPEM())
	if err != nil {
		t.Fatal(err)
	}
	wtls, err := ca.TLSConfig{CA: root, Cert: wk.pki.current(), PeerRoles: []api.NodeRole{api.RoleManager}}.Client()
	if err != nil {
		t.Fatal(err)
	}
	fwd := &storerpc.Forwarder{Resolve: func(string) (string, error) { return m1.state.Advertise, nil }, TLS: wtls}
	defer fwd.Close()
	if _, err := fwd.Barrier(ctx, m1.state.RaftAdvertise); err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Errorf("a worker's forwarded barrier: %v, want permission denied", err)
	}
	if _, err := fwd.Apply(ctx, m1.state.RaftAdvertise, []byte("{}")); err == nil || errors.Is(err, store.ErrUncertain) {
		t.Errorf("a worker's forwarded write: %v, want refused", err)
	}

	// The leader stops: another is elected and the cluster keeps taking writes.
	if !m1.store.IsLeader() {
		t.Fatal("m1 is not the leader")
	}
	stop1()
	if err := storetest.WaitFor(func() bool { return m2.store.IsLeader() || m3.store.IsLeader() }, 30*time.Second); err != nil {
		t.Fatal("no new leader")
	}
	w3, err := managerClient(m3).RotateToken(ctx, "worker", nil)
	if err != nil {
		t.Fatalf("write after the leader stopped: %v", err)
	}
	if w3.Token == w2.Token {
		t.Error("the token did not change")
	}
	// The new leader admits nodes: it holds the CA key through the store.
	if _, err := testJoin(ctx, flags("m4"), rotated.Token, m2.state.Advertise); err != nil {
		t.Errorf("join through m2 after the leader stopped: %v", err)
	}

	// A forged manager certificate (another CA, m2's node ID) is refused.
	other, err := ca.NewRootCA(ca.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	csr, key, err := ca.NewCSR(m2.state.ID)
	if err != nil {
		t.Fatal(err)
	}
	forgedPEM, err := other.Issue(csr, m2.state.ID, api.RoleManager)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := ca.LoadNodeCert(forgedPEM, key, other.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	ftls, err := ca.TLSConfig{CA: root, Cert: forged, PeerRoles: []api.NodeRole{api.RoleManager}}.Client()
	if err != nil {
		t.Fatal(err)
	}
	ffwd := &storerpc.Forwarder{Resolve: func(string) (string, error) { return m3.state.Advertise, nil }, TLS: ftls}
	defer ffwd.Close()
	if _, err := ffwd.Barrier(ctx, m3.state.RaftAdvertise); err == nil {
		t.Error("a forged manager certificate reached the store")
	}

	// The old leader restarts from its data dir alone and catches up.
	st, err := loadState(m1.dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loadPKI(m1.dir)
	if err != nil {
		t.Fatal(err)
	}
	again := &daemon{dir: m1.dir, state: st, pki: p}
	startNode(t, again, "m1 again")
	if err := storetest.WaitFor(func() bool {
		if again.storeRef.Load() == nil {
			return false
		}
		tk, err := again.tokens()
		return err == nil && tk.Worker.Encode() == w3.Token
	}, 30*time.Second); err != nil {
		t.Error("the restarted manager did not catch up with the token rotated while it was down")
	}
}

// A demoted manager leaves Raft, gets a worker certificate and its old
// manager certificate opens nothing; promoted again, it rejoins Raft.
func TestDemoteAndPromote(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	m1, _, token := firstManager(t, managerFlags(t, filepath.Join(tmp, "m1")))
	m3 := joinManagers(t, m1, token, filepath.Join(tmp, "m2"), filepath.Join(tmp, "m3"))[1]
	if err := storetest.WaitFor(func() bool { return voters(m1) == 3 }, 60*time.Second); err != nil {
		t.Fatalf("voters = %d, want 3", voters(m1))
	}
	managerCert := m3.pki.current()

	demote(t, m1, m3, 2)
	st, err := loadState(m3.dir)
	if err != nil || st.Role != api.RoleWorker {
		t.Errorf("m3's state: %+v, %v; want the worker role", st, err)
	}
	if _, err := os.Stat(raftDir(m3.dir)); err == nil {
		t.Error("the demoted node kept its replica of the store")
	}
	// Its manager certificate is still valid, but it is no member any more.
	root, err := ca.ParseCertificatePEM(m1.pki.caPEM())
	if err != nil {
		t.Fatal(err)
	}
	old, err := ca.TLSConfig{CA: root, Cert: managerCert, PeerRoles: []api.NodeRole{api.RoleManager}}.Client()
	if err != nil {
		t.Fatal(err)
	}
	fwd := &storerpc.Forwarder{Resolve: func(string) (string, error) { return m1.state.Advertise, nil }, TLS: old}
	defer fwd.Close()
	if _, err := fwd.Barrier(ctx, m1.state.RaftAdvertise); err == nil {
		t.Error("a demoted manager's certificate still reaches the store")
	}

	setRole(t, m1, m3.state.ID, api.RoleManager)
	if err := storetest.WaitFor(func() bool { return voters(m1) == 3 }, 60*time.Second); err != nil {
		t.Fatalf("after promote: voters %d, m3's certificate %s", voters(m1), m3.pki.current().Identity.Role)
	}
	if m3.pki.current().Identity.Role != api.RoleManager {
		t.Errorf("m3's certificate is %s after promotion", m3.pki.current().Identity.Role)
	}
}

// A certificate in the last third of its life is renewed in place: the
// node keeps serving, with a new certificate in memory and on disk.
func TestCertificateRenewedBeforeExpiry(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	m1, _, _ := firstManager(t, managerFlags(t, filepath.Join(tmp, "m1")))
	caKey, err := m1.clusterKey(keyCA)
	if err != nil {
		t.Fatal(err)
	}
	// A certificate issued 80 days ago: 10 of its 90 days are left.
	cfg := ca.DefaultConfig()
	cfg.Now = func() time.Time { return time.Now().Add(-80 * 24 * time.Hour) }
	root, err := ca.LoadRootCA(cfg, m1.pki.caPEM(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	csr, key, err := ca.NewCSR(m1.state.ID)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := root.Issue(csr, m1.state.ID, api.RoleManager)
	if err != nil {
		t.Fatal(err)
	}
	old, err := ca.LoadNodeCert(certPEM, key, root.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	if !old.NeedsRenewal(time.Now()) {
		t.Fatal("the old certificate does not need renewal")
	}
	m1.pki.node.Store(old)
	if err := storetest.WaitFor(func() bool { return !m1.pki.current().NeedsRenewal(time.Now()) }, 30*time.Second); err != nil {
		t.Fatal("the certificate was not renewed")
	}
	onDisk, err := loadPKI(m1.dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := onDisk.current().Leaf.SerialNumber, m1.pki.current().Leaf.SerialNumber; got.Cmp(want) != 0 {
		t.Errorf("certificate on disk %v, in use %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(pkiDir(m1.dir), nodeNextFile)); err == nil {
		t.Error("the pending pair was left behind")
	}
	// Its node records the certificate it now shows, for node ls and
	// status to flag a node that does not renew.
	if err := storetest.WaitFor(func() bool {
		var n *api.Node
		err := m1.store.View(func(tx store.ReadTx) (err error) { n, err = store.Get[api.Node](tx, m1.state.ID); return err })
		cur := m1.pki.current().Leaf
		return err == nil && n.Status.CertNotAfter.Equal(cur.NotAfter) && n.Status.CertNotBefore.Equal(cur.NotBefore) &&
			!n.Status.CertRenewalOverdue(time.Now())
	}, 30*time.Second); err != nil {
		t.Error("the renewed certificate is not recorded on the node")
	}
	// The node still serves with it.
	if _, err := managerClient(m1).Token(ctx, "worker"); err != nil {
		t.Errorf("after renewal: %v", err)
	}
}

// A webhook delivered to a follower manager is taken by the leader: the
// request goes through the store.
func TestWebhookOnFollower(t *testing.T) {
	if why := gitserver.Requirements(); why != "" {
		t.Skip(why)
	}
	ctx := context.Background()
	tmp := t.TempDir()
	repo, srv, first := servedRepo(t, tmp)
	const secret = "follower-hook-key"
	f := managerFlags(t, filepath.Join(tmp, "m1"))
	f.repo, f.branch, f.interval, f.webhookSecret = srv.URL, "main", time.Hour, secret
	m1, _, token := firstManager(t, f)
	hook := freeAddr(t)
	f2 := managerFlags(t, filepath.Join(tmp, "m2"))
	f2.webhookListen = hook
	m2, err := testJoin(ctx, f2, token, m1.state.Advertise)
	if err != nil {
		t.Fatal(err)
	}
	startNode(t, m2, "m2")
	synced := func(rev string) bool {
		rep := statusOf(t, socketFile(m1.dir))
		return rep.State.Revision == rev && rep.State.Phase == api.SyncSynced
	}
	if err := storetest.WaitFor(func() bool { return voters(m1) == 2 && synced(first) }, 60*time.Second); err != nil {
		t.Fatal("the cluster never synced its first commit with 2 managers")
	}
	second, err := repo.Commit("main", "second", zeroReplicaStack("busybox:2"))
	if err != nil {
		t.Fatal(err)
	}
	var code int
	var msg string
	// The follower answers once its webhook listener is up.
	if err := storetest.WaitFor(func() bool {
		code, msg, err = gitserver.Deliver(ctx, "http://"+hook, []byte(secret), "main", second)
		return err == nil
	}, 30*time.Second); err != nil {
		t.Fatalf("deliver to the follower: %v", err)
	}
	if code != http.StatusAccepted || !strings.HasPrefix(msg, "sync queued for main at "+second[:7]) {
		t.Fatalf("the follower answered %d %q", code, msg)
	}
	if m2.store.IsLeader() {
		t.Fatal("m2 leads: the test wants a follower")
	}
	if err := storetest.WaitFor(func() bool { return synced(second) }, 60*time.Second); err != nil {
		t.Fatalf("the leader did not deploy the commit pushed through the follower: %+v", statusOf(t, socketFile(m1.dir)).State)
	}
}

// A node stopped in the middle of its promotion, after it recorded its
// manager role (saveRole) but before it saved its manager certificate,
// restarts as a manager: it opens its store with the data key it kept,
// renews its certificate and becomes a voter again.
func TestPromotionInterruptedBeforeCertificate(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	m1, _, token := firstManager(t, managerFlags(t, filepath.Join(tmp, "m1")))
	m2, err := testJoin(ctx, managerFlags(t, filepath.Join(tmp, "m2")), token, m1.state.Advertise)
	if err != nil {
		t.Fatal(err)
	}
	stop2 := startNode(t, m2, "m2")
	if err := storetest.WaitFor(func() bool { return voters(m1) == 2 }, 60*time.Second); err != nil {
		t.Fatalf("voters = %d, want 2", voters(m1))
	}
	demote(t, m1, m2, 1)
	stop2()

	// Promoted while it is stopped; then the first half of what it does
	// when it learns it: the role is recorded, the certificate is not.
	setRole(t, m1, m2.state.ID, api.RoleManager)
	key, err := m1.store.ExportDataKey()
	if err != nil {
		t.Fatal(err)
	}
	st, err := loadState(m2.dir)
	if err != nil {
		t.Fatal(err)
	}
	st.Role = api.RoleManager
	if err := saveRole(m2.dir, st, key, nil); err != nil {
		t.Fatal(err)
	}
	p, err := loadPKI(m2.dir)
	if err != nil || p.current().Identity.Role != api.RoleWorker {
		t.Fatalf("m2's certificate on disk: %v, %v; want its worker certificate", p, err)
	}

	again := &daemon{dir: m2.dir, state: st, pki: p}
	startNode(t, again, "m2 again")
	if err := storetest.WaitFor(func() bool {
		return voters(m1) == 2 && again.pki.current().Identity.Role == api.RoleManager
	}, 60*time.Second); err != nil {
		t.Fatalf("after restart: voters %d, m2's certificate %s", voters(m1), again.pki.current().Identity.Role)
	}
}
