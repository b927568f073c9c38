package node

// The in-process harness of the node's tests: nodes on loopback, each with
// its own data dir, run in the test's process (containerd-backed workers
// where the test runs as root), through the same bootstrap and join as
// gitorc's commands.

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/agent/containerd/imagetest"
	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// testFlags describe a node as the tests want it: bootstrap's and join's
// flags, as fields (zero: the flag's default).
type testFlags struct {
	dataDir, listen, advertise, raftListen string
	noWorker                               bool
	insecure                               []string
	repo, branch, path                     string
	interval                               time.Duration
	webhookListen, webhookSecret           string
	gitUsername, gitPassword               string
	metricsListen, uiListen                string
	autolock                               bool
	timing                                 Timing
	policy                                 *api.NodePolicy
	dnsUpstreams                           []string
	plan                                   *api.NetworkConfig // nil: the default plan
}

// testPlan is an address plan of tests' own, apart from the default
// pools other nodes on this host may use.
var testPlan = &api.NetworkConfig{TaskPool: "10.231.0.0/16", VIPPool: "10.232.0.0/16", NodeSubnetBits: 24}

func (f testFlags) settings() Settings {
	return Settings{Listen: f.listen, Advertise: f.advertise, RaftListen: f.raftListen, NoWorker: f.noWorker,
		InsecureRegistries: f.insecure, WebhookListen: f.webhookListen, MetricsListen: f.metricsListen, UIListen: f.uiListen,
		Timing: f.timing, Policy: f.policy, DNSUpstreams: f.dnsUpstreams}
}

// testBootstrap lays out a new cluster's first node as f says, as
// gitorc bootstrap does (its address plan: the default one).
func testBootstrap(f testFlags) (*daemon, error) {
	b := &Bootstrap{Settings: f.settings(), Autolock: f.autolock, Network: api.DefaultNetworkConfig()}
	if f.plan != nil {
		b.Network = *f.plan
	}
	if f.repo != "" {
		interval := f.interval
		if interval == 0 {
			interval = time.Minute
		}
		b.Source = &api.SourceSpec{URL: f.repo, Ref: f.branch, Path: f.path, Interval: api.Duration(interval)}
	}
	if f.webhookSecret != "" {
		b.WebhookSecret = api.SecretBytes(f.webhookSecret)
	}
	if f.gitPassword != "" {
		b.GitUsername, b.GitPassword = f.gitUsername, api.SecretBytes(f.gitPassword)
	}
	cfg := Config{DataDir: f.dataDir, Bootstrap: b}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return bootstrap(f.dataDir, b)
}

// testJoin joins a node laid out as f says to the cluster, through the
// manager at manager, as gitorc join does.
func testJoin(ctx context.Context, f testFlags, token, manager string) (*daemon, error) {
	j := &Join{Settings: f.settings(), Token: token, Manager: manager}
	cfg := Config{DataDir: f.dataDir, Join: j}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return join(ctx, f.dataDir, j)
}

// socketOf is the node's control socket.
func socketOf(d *daemon) string { return socketFile(d.dir) }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// tasksOf summarises a service's tasks as "state/health" counts.
func tasksOf(t *testing.T, s *store.Store, service string) map[string]int {
	out := map[string]int{}
	err := s.View(func(tx store.ReadTx) error {
		svcs, err := store.Find[api.Service](tx, store.ByName(service))
		if err != nil || len(svcs) == 0 {
			return err
		}
		tasks, err := store.Find[api.Task](tx, store.ByService(svcs[0].ID))
		for _, tk := range tasks {
			k := tk.Status.State.String()
			if tk.Status.Health != api.HealthNone {
				k += "/" + tk.Status.Health.String()
			}
			if tk.Status.Err != "" {
				k += ": " + tk.Status.Err
			}
			out[k]++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// liveTasks counts tasks that have not ended.
func liveTasks(s *store.Store) int {
	live := 0
	_ = s.View(func(tx store.ReadTx) error {
		tasks, err := store.Find[api.Task](tx, store.All())
		for _, tk := range tasks {
			if !tk.Status.State.Terminal() {
				live++
			}
		}
		return err
	})
	return live
}

// testRegistry skips the test unless it can run containers, and serves
// gitorc/busybox:1 (which sleeps) from a loopback registry.
func testRegistry(t *testing.T, dir string) *imagetest.Registry {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (containerd)")
	}
	for _, p := range []string{imagetest.BusyboxPath, imagetest.RegistryPath, "/usr/bin/containerd", "/usr/sbin/runc"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("needs %s: run scripts/install-deps.sh", p)
		}
	}
	reg, err := imagetest.StartBusyboxRegistry(context.Background(), filepath.Join(dir, "registry"), "127.0.0.1",
		[]string{"sleep", "3600"}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	return reg
}

// syncWriter serialises writes from the daemon's goroutines.
type syncWriter struct {
	mu chan struct{}
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	if s.mu == nil {
		s.mu = make(chan struct{}, 1)
	}
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.w.Write(p)
}

// startNode runs a node in the background until the test ends.
func startNode(t *testing.T, d *daemon, name string) (stop func()) {
	t.Helper()
	var logs strings.Builder
	d.log = slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)).With("node", name)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case <-time.After(2 * time.Minute):
			// A node that does not stop is a bug: show where it hangs
			// instead of waiting for the package's timeout.
			buf := make([]byte, 1<<22)
			t.Errorf("%s did not stop within 2 minutes; goroutines:\n%s", name, buf[:runtime.Stack(buf, true)])
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, logs.String())
		}
	}
	t.Cleanup(stop)
	return stop
}

// voters counts the voters of the Raft configuration as d sees it.
func voters(d *daemon) int {
	ms, err := d.store.Members()
	if err != nil {
		return 0
	}
	n := 0
	for _, m := range ms {
		if m.Voter {
			n++
		}
	}
	return n
}

func managerClient(d *daemon) *client.Client {
	return client.Unix(socketFile(d.dir))
}

// managerFlags are a manager's flags on loopback, running no tasks.
func managerFlags(t *testing.T, dir string) testFlags {
	return testFlags{dataDir: dir, listen: freeAddr(t), raftListen: freeAddr(t), noWorker: true}
}

// firstManager bootstraps a cluster with f, runs it, and returns its
// manager token once it can admit nodes.
func firstManager(t *testing.T, f testFlags) (d *daemon, stop func(), token string) {
	t.Helper()
	d, err := testBootstrap(f)
	if err != nil {
		t.Fatal(err)
	}
	stop = startNode(t, d, filepath.Base(f.dataDir))
	var tok controlapi.TokenReport
	if err := storetest.WaitFor(func() bool {
		var err error
		tok, err = managerClient(d).Token(context.Background(), "manager")
		return err == nil
	}, 30*time.Second); err != nil {
		t.Fatal("no manager token")
	}
	return d, stop, tok.Token
}

// joinManagers joins and runs a manager in each data dir, through m.
func joinManagers(t *testing.T, m *daemon, token string, dirs ...string) []*daemon {
	t.Helper()
	var out []*daemon
	for _, dir := range dirs {
		d, err := testJoin(context.Background(), managerFlags(t, dir), token, m.state.Advertise)
		if err != nil {
			t.Fatal(err)
		}
		startNode(t, d, filepath.Base(dir))
		out = append(out, d)
	}
	return out
}

// setRole asks the leader m1 to give node id a role.
func setRole(t *testing.T, m1 *daemon, id string, role api.NodeRole) {
	t.Helper()
	if _, err := managerClient(m1).UpdateNode(context.Background(), id, controlapi.NodeUpdate{Role: role.String()}); err != nil {
		t.Fatalf("make %s a %s: %v", id, role, err)
	}
}

// demote makes manager d a worker and waits until m1 counts want
// voters and d holds a worker certificate.
func demote(t *testing.T, m1, d *daemon, want int) {
	t.Helper()
	setRole(t, m1, d.state.ID, api.RoleWorker)
	if err := storetest.WaitFor(func() bool {
		return voters(m1) == want && d.pki.current().Identity.Role == api.RoleWorker
	}, 60*time.Second); err != nil {
		t.Fatalf("after demote: voters %d, %s's certificate %s", voters(m1), d.dir, d.pki.current().Identity.Role)
	}
}
