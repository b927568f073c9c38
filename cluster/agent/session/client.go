package session

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
)

// Log keys.
const (
	logKeyAddr = "addr"
	logKeyErr  = "err"
	logKeyWait = "wait"
)

// Defaults.
const (
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
	// maxRedirects in a row before backing off, so that managers that
	// disagree on who leads cannot make a worker spin.
	maxRedirects = 3
)

// Assigner receives each complete assignment set; *agent.Agent is one.
type Assigner interface {
	Assign([]agent.Assignment)
}

// Config configures a Client.
type Config struct {
	// Managers are the dispatcher addresses (host:port) to try, in turn.
	Managers []string
	// TLS is the node's client TLS config (cluster/ca TLSConfig.Client,
	// with PeerRoles manager).
	TLS *tls.Config
	// Agent receives the assignment sets.
	Agent Assigner
	// Description is what the node says about itself in its Hello.
	Description api.NodeDescription
	// MinBackoff and MaxBackoff bound the wait between failed attempts.
	MinBackoff, MaxBackoff time.Duration
	// Clock defaults to the wall clock.
	Clock  agent.Clock
	Logger *slog.Logger
	// DialOptions are added to the client's gRPC dial options.
	DialOptions []grpc.DialOption
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Managers) == 0 {
		errs = append(errs, errors.New("session config: no manager address"))
	}
	if c.TLS == nil {
		errs = append(errs, errors.New("session config: TLS config is required"))
	}
	if c.Agent == nil {
		errs = append(errs, errors.New("session config: agent is required"))
	}
	if c.MinBackoff < 0 || c.MaxBackoff < 0 || (c.MaxBackoff > 0 && c.MinBackoff > c.MaxBackoff) {
		errs = append(errs, errors.New("session config: backoff bounds must be positive and ordered"))
	}
	return errors.Join(errs...)
}

// Client keeps the node's session with the leader. Create it with New,
// pass it to the agent as its Reporter and run it with Run.
type Client struct {
	cfg  Config
	log  *slog.Logger
	kick chan struct{}

	mu     sync.Mutex
	latest map[string]api.TaskStatus // by task ID: the latest reported status
	unsent map[string]bool           // tasks whose latest status the leader has not been sent
	nodeID string                    // as the last leader read it from the certificate
}

var _ agent.Reporter = (*Client)(nil)

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.Clock == nil {
		cfg.Clock = agent.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1),
		latest: map[string]api.TaskStatus{}, unsent: map[string]bool{}}, nil
}

// ReportTaskStatus queues a task's status for the leader (agent.Reporter).
// It never blocks on the network.
func (c *Client) ReportTaskStatus(_ context.Context, taskID string, st api.TaskStatus) error {
	c.mu.Lock()
	if cur, ok := c.latest[taskID]; ok && st.State < cur.State {
		c.mu.Unlock()
		return nil
	}
	c.latest[taskID] = st
	c.unsent[taskID] = true
	c.mu.Unlock()
	c.wake()
	return nil
}

func (c *Client) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// NodeID is the node's ID as the leader read it from the certificate,
// empty before the first session.
func (c *Client) NodeID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodeID
}

// Run keeps a session with the leader until ctx ends.
func (c *Client) Run(ctx context.Context) error {
	next, redirects, failures := 0, 0, 0
	target := ""
	for ctx.Err() == nil {
		addr := target
		if addr == "" {
			addr = c.cfg.Managers[next%len(c.cfg.Managers)]
			next++
		}
		target = ""
		established, err := c.session(ctx, addr)
		if ctx.Err() != nil {
			return nil
		}
		if established {
			failures, redirects = 0, 0
		}
		if leader, ok := wire.LeaderAddr(err); ok && leader != addr && redirects < maxRedirects {
			redirects++
			c.log.Info("redirected to the leader", logKeyAddr, addr, "leader", leader)
			target = leader
			continue
		}
		redirects = 0
		wait := c.backoff(failures)
		failures++
		c.log.Warn("session with manager", logKeyAddr, addr, logKeyErr, err, logKeyWait, wait)
		t := c.cfg.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C():
		}
	}
	return nil
}

func (c *Client) backoff(failures int) time.Duration {
	d := c.cfg.MinBackoff
	for range failures {
		if d >= c.cfg.MaxBackoff/2 {
			return c.cfg.MaxBackoff
		}
		d *= 2
	}
	return d
}

// session runs one session with addr until it fails; established says
// whether the leader accepted the node.
func (c *Client) session(ctx context.Context, addr string) (established bool, err error) {
	opts := append(append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(c.cfg.TLS))}, wire.DialOptions()...), c.cfg.DialOptions...)
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return false, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer cc.Close()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stream, err := wire.OpenSession(ctx, cc)
	if err != nil {
		return false, err
	}
	if err := stream.Send(&wire.WorkerMessage{Hello: &wire.Hello{Description: c.cfg.Description}}); err != nil {
		_, err = stream.Recv() // the real reason is in the status
		return false, err
	}
	m, err := stream.Recv()
	if err != nil {
		return false, err
	}
	if m.Session == nil {
		return false, errors.New("leader did not acknowledge the hello")
	}
	period := m.Session.HeartbeatPeriod
	if period <= 0 {
		period = 5 * time.Second
	}
	c.mu.Lock()
	c.nodeID = m.Session.NodeID
	for id := range c.latest { // the new leader may lack what the old one had
		c.unsent[id] = true
	}
	c.mu.Unlock()
	c.log.Info("session started", logKeyAddr, addr, "node", m.Session.NodeID)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		cancel(c.send(ctx, stream, period))
	}()
	err = c.receive(stream)
	cancel(err)
	wg.Wait()
	return true, err
}

// send sends heartbeats and status batches until ctx ends or a send fails.
func (c *Client) send(ctx context.Context, stream wire.SessionClient, period time.Duration) error {
	c.wake() // statuses to resend
	for {
		t := c.cfg.Clock.NewTimer(period)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-c.kick:
			t.Stop()
			if err := c.sendStatuses(stream); err != nil {
				return err
			}
		case <-t.C():
			if err := stream.Send(&wire.WorkerMessage{Heartbeat: &wire.Heartbeat{}}); err != nil {
				return err
			}
		}
	}
}

func (c *Client) sendStatuses(stream wire.SessionClient) error {
	c.mu.Lock()
	batch := &wire.StatusBatch{}
	for id := range c.unsent {
		batch.Updates = append(batch.Updates, wire.TaskStatusUpdate{TaskID: id, Status: c.latest[id]})
	}
	clear(c.unsent)
	c.mu.Unlock()
	if len(batch.Updates) == 0 {
		return nil
	}
	if err := stream.Send(&wire.WorkerMessage{Status: batch}); err != nil {
		c.mu.Lock()
		for _, u := range batch.Updates {
			c.unsent[u.TaskID] = true
		}
		c.mu.Unlock()
		return err
	}
	return nil
}

// receive hands each assignment set to the agent until the stream fails.
func (c *Client) receive(stream wire.SessionClient) error {
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		if m.Assignments == nil {
			continue
		}
		as := Assignments(m.Assignments)
		c.forget(as)
		c.cfg.Agent.Assign(as)
	}
}

// forget drops the statuses of tasks no longer assigned: the leader no
// longer wants them.
func (c *Client) forget(as []agent.Assignment) {
	keep := make(map[string]bool, len(as))
	for _, a := range as {
		keep[a.Task.ID] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.latest {
		if !keep[id] {
			delete(c.latest, id)
			delete(c.unsent, id)
		}
	}
}

// Assignments converts an assignment set to what the agent takes: each
// task with the payloads of the secrets and configs it refers to.
func Assignments(set *wire.AssignmentSet) []agent.Assignment {
	secrets := make(map[string]wire.Plaintext, len(set.Secrets))
	for _, s := range set.Secrets {
		secrets[s.Name] = s.Data
	}
	configs := make(map[string][]byte, len(set.Configs))
	for _, cf := range set.Configs {
		configs[cf.Name] = cf.Data
	}
	out := make([]agent.Assignment, 0, len(set.Tasks))
	for _, t := range set.Tasks {
		if t == nil {
			continue
		}
		var files agent.Files
		for _, r := range t.Spec.Container.Secrets {
			if data, ok := secrets[r.Name]; ok {
				if files.Secrets == nil {
					files.Secrets = map[string]api.SecretBytes{}
				}
				files.Secrets[r.Name] = api.SecretBytes(data)
			}
		}
		for _, r := range t.Spec.Container.Configs {
			if data, ok := configs[r.Name]; ok {
				if files.Configs == nil {
					files.Configs = map[string][]byte{}
				}
				files.Configs[r.Name] = data
			}
		}
		out = append(out, agent.Assignment{Task: t, Files: files})
	}
	return out
}
