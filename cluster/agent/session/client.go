package session

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
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
	logKeyN    = "n"
)

// Defaults.
const (
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
	// DefaultStatusInterval is the least time between two status
	// batches (Config.StatusInterval).
	DefaultStatusInterval = 50 * time.Millisecond
	// maxRedirects in a row before backing off, so that managers that
	// disagree on who leads cannot make a worker spin.
	maxRedirects = 3
)

// Assigner receives each complete assignment set; *agent.Agent is one.
type Assigner interface {
	Assign([]agent.Assignment)
}

// Updater is an optional ability of an Assigner (*agent.Agent has it): it
// takes a change to the set it holds, the tasks added or changed and the
// IDs of those removed, instead of the whole set again. An Assigner
// without it gets the whole set after every change.
type Updater interface {
	Update(changed []agent.Assignment, removed []string)
}

// NetConfigurer applies the node's whole network view (netplane's Plane
// is one). Reconfig should be a no-op for a view equal to the one it
// applied last: every new session sends the view again.
type NetConfigurer interface {
	Reconfig(ctx context.Context, v *api.NetView) error
}

// RegistryLogins receives the registry credentials of each assignment
// set, by registry host, before the agent sees the set's tasks (whose
// pulls need them). They must be kept in memory only.
type RegistryLogins interface {
	SetRegistryLogins(map[string]api.RegistryLogin)
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
	// Network, optional, receives the network views. They are applied
	// in the background, the latest first: a slow Reconfig never holds
	// up assignments.
	Network NetConfigurer
	// Registries, optional, receives the registry logins.
	Registries RegistryLogins
	// Logs, optional, serves the managers' task log requests (logs.go);
	// without it they are answered with ErrNoLogs.
	Logs LogReader
	// Description is what the node says about itself in its Hello.
	Description api.NodeDescription
	// MinBackoff and MaxBackoff bound the wait between failed attempts.
	MinBackoff, MaxBackoff time.Duration
	// StatusInterval is the least time between two status batches: a
	// status after a quiet spell goes at once, the statuses of a burst
	// (a deploy starting many tasks) in a few batches. Each batch is a
	// store write on the leader and, today, a new assignment set for the
	// node; a deploy of 50 sent ~150 one-status batches without it and
	// used 50% more CPU. Default DefaultStatusInterval; negative: none.
	StatusInterval time.Duration
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

	// view is the latest network view received and not yet taken by
	// applyViews, which viewKick wakes.
	viewMu   sync.Mutex
	view     *api.NetView
	viewKick chan struct{}
	// gotView: a session received a view; the next hello says so
	// (wire.Hello.HasView).
	gotView atomic.Bool
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
	switch {
	case cfg.StatusInterval == 0:
		cfg.StatusInterval = DefaultStatusInterval
	case cfg.StatusInterval < 0:
		cfg.StatusInterval = 0
	}
	return &Client{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1), viewKick: make(chan struct{}, 1),
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

// Run keeps a session with the leader until ctx ends, and applies the
// network views it receives (Config.Network).
func (c *Client) Run(ctx context.Context) error {
	if c.cfg.Network != nil {
		viewCtx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.applyViews(viewCtx)
		}()
		defer func() {
			cancel()
			wg.Wait()
		}()
	}
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
		wait := jittered(c.backoff(failures))
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

// jittered is a wait of between half of d and d, at random: the workers
// whose sessions one leader's end cut at once do not all come back to the
// next at the same instant.
func jittered(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d-d/2+1)
}

// backoff is the longest wait after failures failures in a row: it
// doubles from MinBackoff up to MaxBackoff.
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
	if err := stream.Send(&wire.WorkerMessage{Hello: &wire.Hello{Description: c.cfg.Description, Deltas: true, HasView: c.gotView.Load()}}); err != nil {
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

	out := &sender{stream: stream}
	logs := newLogServer(ctx, c.cfg.Logs, out)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		cancel(c.send(ctx, out, period))
	}()
	err = c.receive(stream, logs)
	cancel(err)
	wg.Wait()
	logs.wait()
	return true, err
}

// send sends heartbeats and status batches, at most one batch per
// Config.StatusInterval, until ctx ends or a send fails.
func (c *Client) send(ctx context.Context, stream *sender, period time.Duration) error {
	c.wake()           // statuses to resend
	var last time.Time // of the last status batch
	for {
		t := c.cfg.Clock.NewTimer(period)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-c.kick:
			t.Stop()
			if wait := c.cfg.StatusInterval - c.cfg.Clock.Now().Sub(last); !last.IsZero() && wait > 0 {
				// Within the interval of the last batch: what comes
				// meanwhile goes with this one.
				pace := c.cfg.Clock.NewTimer(wait)
				select {
				case <-ctx.Done():
					pace.Stop()
					return context.Cause(ctx)
				case <-pace.C():
				}
			}
			sent, err := c.sendStatuses(stream)
			if err != nil {
				return err
			}
			if sent {
				last = c.cfg.Clock.Now()
			}
		case <-t.C():
			if err := stream.send(&wire.WorkerMessage{Heartbeat: &wire.Heartbeat{}}); err != nil {
				return err
			}
		}
	}
}

// sendStatuses sends the statuses not sent yet, in one batch; sent says
// whether there were any.
func (c *Client) sendStatuses(stream *sender) (sent bool, err error) {
	c.mu.Lock()
	batch := &wire.StatusBatch{}
	for id := range c.unsent {
		batch.Updates = append(batch.Updates, wire.TaskStatusUpdate{TaskID: id, Status: c.latest[id]})
	}
	clear(c.unsent)
	c.mu.Unlock()
	if len(batch.Updates) == 0 {
		return false, nil
	}
	if err := stream.send(&wire.WorkerMessage{Status: batch}); err != nil {
		c.mu.Lock()
		for _, u := range batch.Updates {
			c.unsent[u.TaskID] = true
		}
		c.mu.Unlock()
		return false, err
	}
	return true, nil
}

// receive hands each assignment set to the agent, each network view to
// applyViews and each log message to logs, until the stream fails.
func (c *Client) receive(stream wire.SessionClient, logs *logServer) error {
	var held Held // what this session's sets add up to
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		switch {
		case m.LogsRequest != nil, m.LogsAck != nil, m.LogsCancel != nil:
			logs.handle(m)
		case m.Network != nil:
			c.gotView.Store(true)
			c.offerView(m.Network)
		case m.Assignments != nil:
			ch, err := held.Apply(m.Assignments)
			if err != nil {
				return err // the next session starts with a complete set
			}
			c.assign(&held, ch)
		}
	}
}

// assign gives the agent what a set changed, registry logins first.
func (c *Client) assign(held *Held, ch Change) {
	if c.cfg.Registries != nil && ch.Registries {
		c.cfg.Registries.SetRegistryLogins(held.Logins())
	}
	up, ok := c.cfg.Agent.(Updater)
	if ch.Complete || !ok {
		as := held.Assignments()
		c.forget(as)
		c.cfg.Agent.Assign(as)
		return
	}
	changed := make([]agent.Assignment, 0, len(ch.Tasks))
	for _, id := range ch.Tasks {
		changed = append(changed, held.assignment(held.tasks[id]))
	}
	c.mu.Lock()
	for _, id := range ch.Removed {
		delete(c.latest, id)
		delete(c.unsent, id)
	}
	c.mu.Unlock()
	up.Update(changed, ch.Removed)
}

// offerView makes v the view to apply next, replacing one not yet taken.
// It never blocks.
func (c *Client) offerView(v *api.NetView) {
	if c.cfg.Network == nil {
		return
	}
	c.viewMu.Lock()
	c.view = v
	c.viewMu.Unlock()
	select {
	case c.viewKick <- struct{}{}:
	default:
	}
}

// takeView takes the view offered last, nil if none is waiting.
func (c *Client) takeView() *api.NetView {
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	v := c.view
	c.view = nil
	return v
}

// applyViews applies the views offered, one at a time and the latest
// first, until ctx ends. A view that fails is tried again after a backoff,
// unless a newer one comes first. An error is logged once until its text
// changes or a view applies.
func (c *Client) applyViews(ctx context.Context) {
	var (
		failed   *api.NetView // the view to retry
		retry    agent.Timer  // when to retry it; nil when none
		failures int
		lastErr  string
	)
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		var retryC <-chan time.Time
		if retry != nil {
			retryC = retry.C()
		}
		var v *api.NetView
		select {
		case <-ctx.Done():
			return
		case <-c.viewKick:
			v = c.takeView()
		case <-retryC:
			retry = nil
			if v = c.takeView(); v == nil {
				v = failed
			}
		}
		if v == nil {
			continue
		}
		if retry != nil {
			retry.Stop()
			retry = nil
		}
		err := c.cfg.Network.Reconfig(ctx, v)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if lastErr != "" {
				c.log.Info("network view applied after errors", logKeyN, failures)
			}
			failed, failures, lastErr = nil, 0, ""
			continue
		}
		wait := c.backoff(failures)
		if msg := err.Error(); msg != lastErr {
			c.log.Warn("apply network view", logKeyErr, err, logKeyWait, wait)
			lastErr = msg
		}
		failed, failures = v, failures+1
		retry = c.cfg.Clock.NewTimer(wait)
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

// LoginsOf returns an assignment set's registry logins by host.
func LoginsOf(set *wire.AssignmentSet) map[string]api.RegistryLogin {
	var h Held
	if _, err := h.Apply(set); err != nil {
		return nil
	}
	return h.Logins()
}

// Assignments converts a complete assignment set to what the agent takes:
// each task with the payloads of the secrets and configs it refers to.
func Assignments(set *wire.AssignmentSet) []agent.Assignment {
	var h Held
	if _, err := h.Apply(set); err != nil {
		return nil
	}
	return h.Assignments()
}
