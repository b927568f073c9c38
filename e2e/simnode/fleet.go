package simnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/agent/session"
	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
)

var errNoTask = fmt.Errorf("simulated task: %w", agent.ErrNotFound)

// DefaultResources are what a simulated node offers the scheduler.
var DefaultResources = api.Resources{NanoCPUs: 4e9, Memory: 8 << 30}

// Config configures a Fleet.
type Config struct {
	// Join is the manager address the nodes join at.
	Join string
	// Token is a worker join token (GTRC-1-…).
	Token string
	// Nodes is how many simulated nodes to run.
	Nodes int
	// NamePrefix prefixes the nodes' host names (default "sim"): sim-00001, …
	NamePrefix string
	// Resources each node offers (default DefaultResources).
	Resources api.Resources
	// JoinParallel bounds the joins in flight (default 2 per CPU).
	JoinParallel int
	// AgentInterval is the agents' observe interval (default 1 s, the
	// real agent's).
	AgentInterval time.Duration
	Logger        *slog.Logger
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Join == "" {
		errs = append(errs, errors.New("simnode config: no manager address to join at"))
	}
	if c.Token == "" {
		errs = append(errs, errors.New("simnode config: no join token"))
	}
	if c.Nodes <= 0 {
		errs = append(errs, errors.New("simnode config: nodes must be positive"))
	}
	return errors.Join(errs...)
}

func (c *Config) withDefaults() {
	if c.NamePrefix == "" {
		c.NamePrefix = "sim"
	}
	if c.Resources == (api.Resources{}) {
		c.Resources = DefaultResources
	}
	if c.JoinParallel <= 0 {
		c.JoinParallel = 2 * runtime.NumCPU()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Node is one simulated worker.
type Node struct {
	// ID is the node ID the cluster gave it at its join.
	ID       string
	Hostname string

	exec    *executor
	agent   *agent.Agent
	session *session.Client

	mu      sync.Mutex
	cancel  context.CancelFunc // ends the node; nil when not running
	done    chan struct{}      // closed when the node's goroutines ended
	stopped atomic.Bool
}

// Running counts the node's tasks that its (simulated) executor runs.
func (n *Node) Running() int { return n.exec.running() }

// Stop ends the node's session and agent as a crashed node would: its
// connection closes and it sends nothing more. It waits until they ended.
func (n *Node) Stop() {
	n.stopped.Store(true)
	n.mu.Lock()
	cancel, done := n.cancel, n.done
	n.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Stopped reports whether Stop was called.
func (n *Node) Stopped() bool { return n.stopped.Load() }

// Fleet is a set of simulated nodes. Create it with Join and run it with
// Run.
type Fleet struct {
	cfg   Config
	nodes []*Node
}

// Join joins cfg.Nodes simulated nodes to the cluster: each makes a key
// and a CSR, and presents the token to the manager, over one connection
// that trusts only the CA the token pins. ctx bounds the joins.
func Join(ctx context.Context, cfg Config) (*Fleet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.withDefaults()
	tok, err := ca.ParseToken(cfg.Token)
	if err != nil {
		return nil, err
	}
	cc, err := grpc.NewClient(cfg.Join, grpc.WithTransportCredentials(credentials.NewTLS(ca.JoinClientConfig(tok, nil))))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", cfg.Join, err)
	}
	defer cc.Close()
	f := &Fleet{cfg: cfg, nodes: make([]*Node, cfg.Nodes)}
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		errMu sync.Mutex
		errs  []error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range min(cfg.JoinParallel, cfg.Nodes) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= cfg.Nodes {
					return
				}
				n, err := f.join(ctx, cc, tok, i)
				if err != nil {
					errMu.Lock()
					errs = append(errs, err)
					errMu.Unlock()
					cancel()
					return
				}
				f.nodes[i] = n
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return f, ctx.Err()
}

// join joins node i.
func (f *Fleet) join(ctx context.Context, cc *grpc.ClientConn, tok ca.Token, i int) (*Node, error) {
	host := fmt.Sprintf("%s-%05d", f.cfg.NamePrefix, i+1)
	csr, key, err := ca.NewCSR("joining")
	if err != nil {
		return nil, err
	}
	resp, err := wire.Join(ctx, cc, &wire.JoinRequest{Token: f.cfg.Token, CSR: csr, Hostname: host})
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", host, err)
	}
	if resp.Role != api.RoleWorker {
		return nil, fmt.Errorf("join %s: admitted as a %s, want a worker token", host, resp.Role)
	}
	root, err := tok.VerifyCA(resp.CA)
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", host, err)
	}
	cert, err := ca.LoadNodeCert(resp.Cert, key, root)
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", host, err)
	}
	tlsCfg, err := ca.TLSConfig{CA: root, Cert: cert, PeerRoles: []api.NodeRole{api.RoleManager}}.Client()
	if err != nil {
		return nil, err
	}
	n := &Node{ID: resp.NodeID, Hostname: host, exec: newExecutor()}
	rep := &lateReporter{}
	if n.agent, err = agent.New(agent.Config{Executor: n.exec, Reporter: rep, Interval: f.cfg.AgentInterval}); err != nil {
		return nil, err
	}
	n.session, err = session.New(session.Config{Managers: resp.Managers, TLS: tlsCfg, Agent: n.agent,
		Description: api.NodeDescription{Hostname: host, Platform: api.Platform{OS: "linux", Architecture: "amd64"},
			Resources: f.cfg.Resources},
		Logger: f.cfg.Logger.With("node", host),
		// Smaller transport buffers than gRPC's 32 KiB defaults: the
		// simulated side only, so that thousands of nodes fit in one
		// process; the managers' side is unchanged.
		DialOptions: []grpc.DialOption{grpc.WithReadBufferSize(4 << 10), grpc.WithWriteBufferSize(4 << 10)}})
	if err != nil {
		return nil, err
	}
	rep.r = n.session
	return n, nil
}

// lateReporter passes the agent's reports to the session created after it.
type lateReporter struct{ r agent.Reporter }

func (l *lateReporter) ReportTaskStatus(ctx context.Context, id string, st api.TaskStatus) error {
	return l.r.ReportTaskStatus(ctx, id, st)
}

// Nodes are the fleet's nodes, in join order.
func (f *Fleet) Nodes() []*Node { return f.nodes }

// Running counts the tasks the fleet's nodes run.
func (f *Fleet) Running() int {
	n := 0
	for _, node := range f.nodes {
		n += node.Running()
	}
	return n
}

// RunningLive counts the tasks the fleet's nodes that were not stopped
// run.
func (f *Fleet) RunningLive() int {
	n := 0
	for _, node := range f.nodes {
		if !node.Stopped() {
			n += node.Running()
		}
	}
	return n
}

// Run runs every node's agent and session until ctx ends (or each node
// was stopped), and waits for them.
func (f *Fleet) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, n := range f.nodes {
		nctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		n.mu.Lock()
		n.cancel, n.done = cancel, done
		n.mu.Unlock()
		if n.Stopped() {
			cancel()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done)
			defer cancel()
			var nwg sync.WaitGroup
			nwg.Add(1)
			go func() {
				defer nwg.Done()
				_ = n.agent.Run(nctx)
			}()
			_ = n.session.Run(nctx)
			cancel()
			nwg.Wait()
		}()
	}
	wg.Wait()
	return nil
}
