package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/agent/containerd"
	"github.com/gitorc/gitorc/cluster/agent/session"
	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/controlapi/server"
	"github.com/gitorc/gitorc/cluster/dispatcher"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/gitorc/gitorc/cluster/logs"
	"github.com/gitorc/gitorc/cluster/orchestrator"
	"github.com/gitorc/gitorc/cluster/scheduler"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storerpc"
	"github.com/gitorc/gitorc/netplane"
	"github.com/gitorc/gitorc/secrets"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// daemon is one gitorc node: a manager (store, controllers, dispatcher,
// control socket) and, unless told otherwise, a worker (agent, executor)
// whose session goes to the managers like any other worker's.
type daemon struct {
	dir   string
	state *State
	pki   *pki
	log   *slog.Logger
	first bool // bootstrap: this node creates the cluster

	store *store.Store
	ident ageIdentity // the cluster's age identity, read from the store
	// newRoot is the CA bootstrap created; its key is sealed with the
	// store's data key once the store is open.
	newRoot *ca.RootCA
	// joinKey is the data key a joining manager was given.
	joinKey *store.DataKey
	// unlockKey seals the data key on disk when the cluster is
	// autolocked: given at bootstrap (--autolock) or with the data key to
	// a joining or promoted manager (autolock.go).
	unlockKey *store.UnlockKey
	// reportUnlockKey is bootstrap's unlock key for its -o json report.
	reportUnlockKey string
	// The worker's agent and executor, and what stops its session: gitorc
	// leave empties the node before it goes.
	agent       *agent.Agent
	exec        *containerd.Executor
	plane       *netplane.Plane
	stopSession context.CancelFunc
	// left is closed by gitorc leave; leaving serialises leave requests.
	left    chan struct{}
	leaving sync.Mutex
	// storeRef is the store for TLS admission checks, which may run
	// before startManager has set d.store.
	storeRef atomic.Pointer[store.Store]
	// webhookSecret is bootstrap's --webhook-secret, sealed with the
	// cluster's keys when the store opens (openSecrets).
	webhookSecret api.SecretBytes
	// gitCredentials are bootstrap's --git-password-file (and user),
	// sealed the same way.
	gitCredentials api.SecretBytes
	// keysImported is closed once importClusterKeys is done, for the
	// GitOps loop to wait for the repository's credentials.
	keysImported chan struct{}
	// logs answers gitorc logs (logs.go); nil on a worker.
	logs *logs.Service
	// metrics are the node's Prometheus metrics (metrics.go), made once
	// per run and shared by the stores and dispatchers it opens.
	metrics *nodeMetrics

	// up, if set, is called once, when the node first serves its control
	// socket (bootstrap, join and daemon -o json print the node then).
	up     func()
	upOnce sync.Once
}

// runRole serves in the node's current role until ctx ends, then stops
// everything it started. It returns errRoleChanged when the cluster gave
// the node another role (run starts it again in that role).
func (d *daemon) runRole(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	goRun := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	defer wg.Wait()
	defer cancel()

	if d.state.Role == api.RoleManager {
		if err := d.startManager(ctx, goRun); err != nil {
			return err
		}
	}
	if d.state.Worker {
		if err := d.startWorker(ctx, goRun); err != nil {
			return err
		}
	} else if d.state.Role != api.RoleManager {
		// A manager that ran no tasks, demoted: it runs nothing but its
		// certificate's renewal, and its socket serves gitorc leave.
		goRun("control socket", func(ctx context.Context) error { return d.serveControl(ctx, nil) })
	}
	goRun("certificates", d.renewLoop)
	d.log.Info("node running", "id", d.state.ID, "role", d.state.Role, "listen", d.state.Listen, "worker", d.state.Worker)
	select {
	case <-ctx.Done():
		select {
		case <-d.left: // left, then stopped: the state still goes
			return errLeft
		default:
			return nil
		}
	case err := <-errc:
		return err
	case <-d.left:
		return errLeft
	}
}

func (d *daemon) startManager(ctx context.Context, goRun func(string, func(context.Context) error)) error {
	roles := []api.NodeRole{api.RoleManager, api.RoleWorker}
	// Nodes without a certificate reach only Join; the dispatcher takes
	// the peer's identity from its verified certificate and refuses others.
	srvTLS, err := ca.TLSConfig{Roots: d.pki.rootCerts, Current: d.pki.current, PeerRoles: roles, AllowNoClientCert: true, Admit: d.admitNode}.Server()
	if err != nil {
		return err
	}
	// Raft: managers only, over mutual TLS.
	raftSrv, err := ca.TLSConfig{Roots: d.pki.rootCerts, Current: d.pki.current, PeerRoles: []api.NodeRole{api.RoleManager}, Admit: d.admitRaftPeer}.Server()
	if err != nil {
		return err
	}
	raftCli, err := ca.TLSConfig{Roots: d.pki.rootCerts, Current: d.pki.current, PeerRoles: []api.NodeRole{api.RoleManager}, Admit: d.admitRaftPeer}.Client()
	if err != nil {
		return err
	}
	tcp, err := store.ListenTCP(d.state.RaftListen, d.state.RaftAdvertise)
	if err != nil {
		return err
	}
	// Followers forward writes to the leader's API, as managers only.
	fwd := &storerpc.Forwarder{Resolve: d.resolveManager, TLS: raftCli}
	defer func() {
		if d.store == nil {
			_ = fwd.Close()
		}
	}()
	s, err := store.New(store.Config{ID: d.state.ID, DataDir: raftDir(d.dir),
		StreamLayer: &tlsLayer{TCPStreamLayer: tcp, server: raftSrv, client: raftCli},
		Bootstrap:   d.first, DataKey: d.joinKey, UnlockKey: d.unlockKey, Forwarder: fwd, Logger: d.log.With("component", "store"),
		Metrics: d.metrics.storeMetrics(), Raft: d.state.timing().raft()})
	if err != nil {
		tcp.Close()
		return err
	}
	if s.Locked() {
		// Autolocked: nothing of the manager runs until gitorc unlock
		// gives the key (the node's tasks keep running meanwhile).
		if err := d.waitUnlocked(ctx, s); err != nil {
			_ = s.Close()
			return err
		}
	}
	d.store = s
	d.joinKey = nil
	d.storeRef.Store(s)
	goRun("store", func(ctx context.Context) error {
		err := s.Run(ctx)
		_ = s.Close()
		_ = fwd.Close()
		return err
	})
	if err := d.openSecrets(ctx); err != nil {
		return err
	}
	d.unlockKey = nil // the key file is sealed by it, and the store follows it (followUnlockKey)
	imported := make(chan struct{})
	d.keysImported = imported
	goRun("cluster keys", func(ctx context.Context) error {
		defer close(imported)
		return d.importClusterKeys(ctx)
	})
	goRun("autolock", d.followUnlockKey)

	// The dispatcher: every worker's session, over mutual TLS.
	disp, err := dispatcher.New(dispatcher.Config{Store: s, Leadership: s, Logger: d.log.With("component", "dispatcher"),
		LeaderAddr: func(li store.LeaderInfo) string { return d.managerAddr(li) }, Metrics: d.metrics.dispatcherMetrics(),
		HeartbeatPeriod: d.state.timing().HeartbeatPeriod.Std(), MissedHeartbeats: d.state.timing().HeartbeatTolerance})
	if err != nil {
		return err
	}
	srv := grpc.NewServer(append(wire.ServerOptions(), grpc.Creds(credentials.NewTLS(srvTLS)))...)
	disp.Register(srv)
	if err := d.startLogs(disp, srv, raftCli); err != nil {
		return err
	}
	wire.RegisterJoin(srv, joinServer{d})
	storerpc.Register(srv, s, d.managersOnly)
	ln, err := net.Listen("tcp", d.state.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", d.state.Listen, err)
	}
	// One port, two protocols: gRPC for nodes, the control API for admins.
	port := newAPIPort(ln, d.log.With("component", "api"))
	goRun("api port", port.Run)
	goRun("dispatcher", disp.Run)
	goRun("grpc", func(ctx context.Context) error {
		go func() { <-ctx.Done(); srv.Stop() }()
		if err := srv.Serve(port.grpc); err != nil && !errors.Is(err, grpc.ErrServerStopped) && ctx.Err() == nil {
			return err
		}
		return nil
	})
	ctl := d.controlAPI()
	goRun("admin api", func(ctx context.Context) error { return d.serveAdmin(ctx, port.admin, ctl) })
	if d.state.UIListen != "" {
		goRun("status page", func(ctx context.Context) error { return d.serveUI(ctx, ctl) })
	}
	goRun("controllers", d.leaderControllers)
	goRun("manager registration", d.registerManager)
	goRun("control socket", func(ctx context.Context) error { return d.serveControl(ctx, ctl) })
	goRun("webhooks", d.serveHooks)
	return nil
}

// managerAddr is where workers reach the leader's dispatcher.
func (d *daemon) managerAddr(li store.LeaderInfo) string {
	if li.ID == d.state.ID {
		return d.state.Advertise
	}
	var addr string
	_ = d.store.View(func(tx store.ReadTx) error {
		if n, err := store.Get[api.Node](tx, li.ID); err == nil && n.Manager != nil {
			addr = n.Manager.Addr
		}
		return nil
	})
	return addr
}

// openSecrets seals, on the bootstrapping manager, the cluster's new CA
// key, join tokens, age identity and webhook secret (if given) with the
// store's data key, for importClusterKeys to move into the store once
// this manager leads: a restart in between loses none of them.
func (d *daemon) openSecrets(ctx context.Context) error {
	if d.newRoot == nil {
		return nil
	}
	key, err := d.store.ExportDataKey()
	if err != nil {
		return err
	}
	if err := sealFile(key, filepath.Join(pkiDir(d.dir), caKeySealed), d.newRoot.KeyPEM()); err != nil {
		return err
	}
	tokens, err := ca.NewJoinTokens(d.newRoot.Digest())
	if err != nil {
		return err
	}
	if err := sealFile(key, filepath.Join(pkiDir(d.dir), tokensSealed), []byte(tokens.Worker.Encode()+"\n"+tokens.Manager.Encode()+"\n")); err != nil {
		return err
	}
	id, err := secrets.GenerateIdentity()
	if err != nil {
		return err
	}
	if err := sealFile(key, filepath.Join(pkiDir(d.dir), identSealed), id.SecretKey().Reveal()); err != nil {
		return err
	}
	if d.webhookSecret != nil {
		if err := sealFile(key, filepath.Join(pkiDir(d.dir), hookSealed), d.webhookSecret.Reveal()); err != nil {
			return err
		}
		d.webhookSecret = nil
	}
	if d.unlockKey != nil {
		if err := sealFile(key, filepath.Join(pkiDir(d.dir), unlockSealed), []byte(d.unlockKey.Encode())); err != nil {
			return err
		}
	}
	if d.gitCredentials != nil {
		if err := sealFile(key, filepath.Join(pkiDir(d.dir), gitCredSealed), d.gitCredentials.Reveal()); err != nil {
			return err
		}
		d.gitCredentials = nil
	}
	d.newRoot = nil
	return writeFileAtomic(recipientPath(d.dir), []byte(id.Recipient()+"\n"), 0o644)
}

// leaderControllers runs the orchestrator and the scheduler while this
// manager leads, and stops them when it does not.
func (d *daemon) leaderControllers(ctx context.Context) error {
	changes, stop := d.store.WatchLeader()
	defer stop()
	var cancel context.CancelFunc
	var wg sync.WaitGroup
	stopAll := func() {
		if cancel != nil {
			cancel()
			wg.Wait()
			cancel = nil
		}
	}
	defer stopAll()
	for {
		select {
		case <-ctx.Done():
			return nil
		case li, ok := <-changes:
			if !ok {
				return nil
			}
			if !li.IsLeader {
				stopAll()
				continue
			}
			if cancel != nil {
				continue
			}
			orch, err := orchestrator.New(orchestrator.Config{Store: d.store, Logger: d.log.With("component", "orchestrator")})
			if err != nil {
				return err
			}
			sched, err := scheduler.NewController(scheduler.ControllerConfig{Store: d.store, Logger: d.log.With("component", "scheduler")})
			if err != nil {
				return err
			}
			lctx, lcancel := context.WithCancel(ctx)
			cancel = lcancel
			wg.Add(7)
			go func() { defer wg.Done(); _ = d.membership(lctx) }()
			go func() { defer wg.Done(); _ = d.runNotifier(lctx) }()
			go func() {
				defer wg.Done()
				if err := d.runAllocator(lctx); err != nil && lctx.Err() == nil {
					d.log.Error("allocator stopped", "err", err)
				}
			}()
			go func() { defer wg.Done(); _ = orch.Run(lctx) }()
			go func() { defer wg.Done(); _ = d.caRotations(lctx) }()
			go func() { defer wg.Done(); _ = sched.Run(lctx) }()
			go func() {
				defer wg.Done()
				if err := d.gitops(lctx); err != nil && lctx.Err() == nil {
					d.log.Error("GitOps loop stopped", "err", err)
				}
			}()
			d.log.Info("leading: controllers started")
		}
	}
}

// serveControl serves the control socket the CLI talks to (root only):
// the node-local handlers and, on a manager, the control API (api), which
// managers also serve to admins on their API port (adminapi.go).
func (d *daemon) serveControl(ctx context.Context, api http.Handler) error {
	path := socketFile(d.dir)
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	d.upOnce.Do(func() {
		if d.up != nil {
			d.up()
		}
	})
	mux := http.NewServeMux()
	server.RegisterLeave(mux, nodeAPI{d: d})
	// Go's profiles of this process, on every node (the socket is root's):
	// go tool pprof 'http+unix:…' does not exist, so fetch them with
	// curl --unix-socket SOCKET http://gitorc/debug/pprof/profile?seconds=10.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	if api != nil {
		mux.Handle("/", api)
	}
	// A worker's socket serves only gitorc leave (and the profiles).
	return serveSocket(ctx, ln, mux, path)
}

// socketShutdownGrace bounds the wait for requests in flight when the
// control socket closes.
const socketShutdownGrace = 2 * time.Second

// serveSocket serves the control socket until ctx ends.
func serveSocket(ctx context.Context, ln net.Listener, h http.Handler, path string) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		// Requests in flight get a moment to finish (the answer to
		// gitorc leave is one of them); streams are then cut.
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), socketShutdownGrace)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			_ = srv.Close()
		}
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	_ = os.Remove(path)
	return nil
}

// startWorker runs the agent on this host, with its own session to the
// managers as any worker has.
func (d *daemon) startWorker(ctx context.Context, goRun func(string, func(context.Context) error)) error {
	ups := d.state.DNSUpstreams
	if len(ups) == 0 {
		var err error
		if ups, err = hostResolvers("/etc/resolv.conf"); err != nil {
			d.log.Warn("no upstream resolvers: names outside the cluster will not resolve", "err", err)
		}
	}
	plane, err := netplane.New(netplane.Config{DataDir: networkDir(d.dir), WireGuardPort: d.state.WireGuardPort,
		Upstreams: ups, Logger: d.log.With("component", "network")})
	if err != nil {
		return err
	}
	goRun("network", plane.Run)
	exec, err := containerd.New(ctx, containerd.Config{DataDir: executorDir(d.dir), InsecureRegistries: d.state.Insecure,
		Network: plane, Policy: d.state.nodePolicy(), Logger: d.log.With("component", "executor")})
	if err != nil {
		return fmt.Errorf("executor: %w", err)
	}
	goRun("executor", func(ctx context.Context) error {
		err := exec.Run(ctx)
		_ = exec.Close()
		return err
	})
	bridge := &reportBridge{}
	ag, err := agent.New(agent.Config{Executor: exec, Reporter: bridge, Logger: d.log.With("component", "agent")})
	if err != nil {
		return err
	}
	cliTLS, err := d.managerClientTLS()
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	wgInfo := plane.WireGuard()
	addrs, err := plane.HostAddrs()
	if err != nil {
		d.log.Warn("list this host's addresses", "err", err)
	}
	sess, err := session.New(session.Config{Managers: d.state.Managers, TLS: cliTLS, Agent: ag, Network: plane, Registries: exec, Logs: exec,
		Description: api.NodeDescription{Hostname: host, Platform: api.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH},
			Resources: hostResources(), WireGuard: &wgInfo, Addrs: addrs, Policy: new(d.state.nodePolicy())},
		Logger: d.log.With("component", "session")})
	if err != nil {
		return err
	}
	bridge.set(sess)
	d.agent, d.exec, d.plane = ag, exec, plane
	sctx, stopSession := context.WithCancel(ctx)
	d.stopSession = stopSession
	goRun("agent", ag.Run)
	goRun("session", func(context.Context) error { return sess.Run(sctx) })
	if d.state.Role != api.RoleManager {
		goRun("control socket", func(ctx context.Context) error { return d.serveControl(ctx, nil) })
	}
	return nil
}

// reportBridge lets the agent report to a session created after it.
type reportBridge struct {
	mu sync.Mutex
	r  agent.Reporter
}

func (b *reportBridge) set(r agent.Reporter) { b.mu.Lock(); b.r = r; b.mu.Unlock() }

func (b *reportBridge) ReportTaskStatus(ctx context.Context, id string, st api.TaskStatus) error {
	b.mu.Lock()
	r := b.r
	b.mu.Unlock()
	if r == nil {
		return errors.New("no session yet")
	}
	return r.ReportTaskStatus(ctx, id, st)
}

// hostResources is what the scheduler may reserve on this node.
func hostResources() api.Resources {
	r := api.Resources{NanoCPUs: api.NanoCPUs(runtime.NumCPU()) * 1e9}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			r.Memory = api.Bytes(kb << 10)
		}
	}
	return r
}

// writeJSONResponse answers v as JSON with the status code. The body has a length, so a client has all of it once it is flushed,
// even when the node stops right after (gitorc leave).
func writeJSONResponse(w http.ResponseWriter, code int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}
