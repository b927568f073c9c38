package dispatcher

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/gitorc/gitorc/cluster/store"
	"google.golang.org/grpc"
)

// Log keys.
const (
	logKeyNode = "node"
	logKeyTask = "task"
	logKeyErr  = "err"
	logKeyN    = "n"
)

// Dispatcher serves worker sessions on the leader. Create it with New,
// register it on a gRPC server with Register and run it with Run.
type Dispatcher struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	runCtx   context.Context // nil while Run is not running
	sessWG   sync.WaitGroup
	sessions map[string]*session // by node ID
	leading  bool

	live       liveness
	pending    statusQueue
	regs       registrations
	netIndexes netIndexes
	fan        fanout
	pace       viewPace
}

var _ wire.Server = (*Dispatcher)(nil)

// New returns a dispatcher for cfg.
func New(cfg Config) (*Dispatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.withDefaults()
	d := &Dispatcher{cfg: cfg, log: cfg.Logger, sessions: map[string]*session{}}
	d.live.seen = map[string]seenAt{}
	d.pending.init()
	d.regs.init()
	d.fan.init()
	d.netIndexes.onBuild = cfg.Metrics.observeIndexBuild
	return d, nil
}

// Register registers the dispatcher's service on a gRPC server. The
// server must use TLS credentials built with cluster/ca that require
// client certificates.
func (d *Dispatcher) Register(r grpc.ServiceRegistrar) { wire.Register(r, d) }

// HeartbeatPeriod is the period workers are told to heartbeat at.
func (d *Dispatcher) HeartbeatPeriod() time.Duration { return d.cfg.HeartbeatPeriod }

// MissedHeartbeats is how many periods a node may be silent before it is down.
func (d *Dispatcher) MissedHeartbeats() int { return d.cfg.MissedHeartbeats }

// Run serves until ctx ends: it follows leadership, marks silent nodes
// down and writes task statuses. Sessions are served only while Run runs;
// when it returns, every session has ended.
func (d *Dispatcher) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.mu.Lock()
	if d.runCtx != nil {
		d.mu.Unlock()
		return fmt.Errorf("dispatcher: already running")
	}
	d.runCtx = ctx
	d.mu.Unlock()

	leaders, stop := d.cfg.Leadership.WatchLeader()
	defer stop()

	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		d.writeStatuses(ctx)
	}()
	go func() {
		defer wg.Done()
		last := ""
		d.fan.run(ctx, d.cfg.Store, d.cfg.Clock, func(err error) {
			if msg := err.Error(); msg != last {
				d.log.Warn("watch the store for worker sessions", logKeyErr, err)
				last = msg
			}
		}, func(err error) {
			d.log.Info("worker sessions read the store again", "cause", err)
		})
	}()
	go func() {
		defer wg.Done()
		d.writeRegistrations(ctx)
	}()
	defer func() {
		cancel()
		d.mu.Lock()
		d.runCtx = nil
		d.mu.Unlock()
		d.endSessions(ErrNotRunning)
		d.sessWG.Wait()
		wg.Wait()
	}()

	// Silent nodes are looked for several times a period, so a node is
	// down soon after its tolerance runs out, not up to a period later.
	check := d.cfg.HeartbeatPeriod / expiryChecks
	timer := d.cfg.Clock.NewTimer(check)
	defer func() { timer.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case li, ok := <-leaders:
			if !ok {
				return nil // the store closed
			}
			d.setLeader(ctx, li)
		case <-timer.C():
			d.expire(ctx)
			timer = d.cfg.Clock.NewTimer(check)
		}
	}
}

// ElectionGrace is how long beyond the tolerance a new leader waits for
// the ready nodes it inherits, n of them.
func (d *Dispatcher) ElectionGrace(n int) time.Duration {
	return min(d.cfg.ElectionGrace+time.Duration(n)*d.cfg.ElectionGracePerNode, max(MaxElectionGrace, d.cfg.ElectionGrace))
}

// setLeader follows leadership changes: a new leader gives every ready
// node a grace period; a former leader ends its sessions.
func (d *Dispatcher) setLeader(ctx context.Context, li store.LeaderInfo) {
	d.mu.Lock()
	was := d.leading
	d.leading = li.IsLeader
	d.mu.Unlock()
	switch {
	case li.IsLeader && !was:
		d.log.Info("leading: serving worker sessions")
		if err := d.live.seed(d.cfg.Store, d.cfg.Clock.Now(), d.ElectionGrace); err != nil {
			d.log.Warn("seed node liveness", logKeyErr, err)
		}
	case !li.IsLeader && was:
		d.log.Info("no longer leading: ending worker sessions")
		d.live.reset()
		d.pending.reset()
		d.endSessions(errNotLeader{d.cfg.LeaderAddr(li)})
	}
}

// errNotLeader ends sessions when leadership moves.
type errNotLeader struct{ addr string }

func (e errNotLeader) Error() string { return "not leader; leader is at " + e.addr }

func (d *Dispatcher) endSessions(cause error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.sessions {
		s.cancel(cause)
	}
}
