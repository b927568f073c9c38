package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gitorc/gitorc/cluster/store"
)

// Liveness defaults: workers heartbeat every DefaultHeartbeatPeriod (the
// leader tells each worker the period when its session starts), and a
// node silent for DefaultMissedHeartbeats periods is down. Measured on a
// loaded 2-vCPU machine (BENCHMARKS.md, Faults): a cut-off worker's replicas run
// elsewhere 5.6-7.0 s after the cut (1 s periods: 3.1-3.7 s, also with no
// false down verdict under CPU burners); 2 s halves the leader's
// heartbeat traffic and tolerates a 4 s stall.
const (
	DefaultHeartbeatPeriod  = 2 * time.Second
	DefaultMissedHeartbeats = 3
)

// DefaultElectionGrace is how long, beyond the tolerance, a new leader
// waits for the ready nodes it inherits to find it: a worker whose
// session ended with the old leader's term retries with a backoff of up
// to 10 s (cluster/agent/session's DefaultMaxBackoff), and thousands of
// workers reconnect at once (a TLS handshake each). With only the
// tolerance, a leader elected on a loaded machine called all 1,000
// simulated nodes down 6 s after its election, before any had come back,
// and the orchestrator moved their 20,000 tasks.
const DefaultElectionGrace = 10 * time.Second

// DefaultElectionGracePerNode is added to the election grace for each
// ready node a new leader inherits: the fleet reconnects through one
// leader, a TLS handshake and a registration each, so a larger fleet
// needs longer to find it. 5,000 simulated nodes took 27 s to become
// ready on a fresh cluster here (5.5 ms a node), and 15 to 45 s to reach
// a new leader, when the grace was a flat 10 s and the leader called
// them down. At 5 ms a node, 100 nodes get 0.5 s more, 5,000 get 25 s.
const DefaultElectionGracePerNode = 5 * time.Millisecond

// MaxElectionGrace bounds the grace, whatever the fleet's size: a node
// that died with the old leader is called down at most this long (and
// the tolerance) after the election.
const MaxElectionGrace = time.Minute

// Bounds of the liveness settings: below MinHeartbeatPeriod the leader
// spends its time on heartbeats; a tolerance below MinMissedHeartbeats
// would call a node down for one late beat.
const (
	MinHeartbeatPeriod  = 100 * time.Millisecond
	MinMissedHeartbeats = 2
)

// expiryChecks is how many times per heartbeat period the leader looks
// for silent nodes: a node is down at most a quarter period after its
// tolerance has run out.
const expiryChecks = 4

// Store is the part of the store the dispatcher reads and writes.
type Store interface {
	View(fn func(store.ReadTx) error) error
	Update(ctx context.Context, fn func(store.Tx) error) (uint64, error)
	ViewAndWatch(fn func(store.ReadTx) error, kinds ...store.Kind) (*store.Watcher, error)
}

// Leadership tells who leads; only the leader serves sessions.
type Leadership interface {
	Leader() store.LeaderInfo
	WatchLeader() (<-chan store.LeaderInfo, func())
}

// Clock is the time source of heartbeats and liveness.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer from a Clock.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// Config configures a Dispatcher.
type Config struct {
	Store Store
	// Leadership defaults to Store when it implements Leadership
	// (*store.Store does).
	Leadership Leadership
	// LeaderAddr maps the leader to the address its dispatcher listens
	// on, for redirecting workers; nil uses LeaderInfo.Addr (the leader
	// serves Raft and gRPC on one address).
	LeaderAddr func(store.LeaderInfo) string
	// HeartbeatPeriod is how often workers heartbeat (sent to each in its
	// session); defaults to DefaultHeartbeatPeriod.
	HeartbeatPeriod time.Duration
	// MissedHeartbeats is the tolerance: a node silent for longer than
	// that many periods is down. Defaults to DefaultMissedHeartbeats.
	MissedHeartbeats int
	// ElectionGrace is added to the tolerance of the nodes a new leader
	// inherits as ready; defaults to DefaultElectionGrace.
	ElectionGrace time.Duration
	// ElectionGracePerNode is added to the grace for each ready node the
	// leader inherits, up to MaxElectionGrace in all; defaults to
	// DefaultElectionGracePerNode.
	ElectionGracePerNode time.Duration
	// Clock defaults to the wall clock.
	Clock  Clock
	Logger *slog.Logger
	// Metrics receives the task start latencies (metrics.go); nil: none.
	Metrics *Metrics
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("dispatcher config: store is required"))
	}
	if c.Leadership == nil {
		if _, ok := c.Store.(Leadership); !ok {
			errs = append(errs, errors.New("dispatcher config: leadership is required (the store does not provide it)"))
		}
	}
	if c.ElectionGrace < 0 || c.ElectionGracePerNode < 0 {
		errs = append(errs, errors.New("dispatcher config: election grace must not be negative"))
	}
	if err := CheckLiveness(c.HeartbeatPeriod, c.MissedHeartbeats); err != nil {
		errs = append(errs, fmt.Errorf("dispatcher config: %w", err))
	}
	return errors.Join(errs...)
}

// CheckLiveness checks a heartbeat period and tolerance (zero: the
// default), as Config.Validate does (cluster/node checks its flags with it).
func CheckLiveness(period time.Duration, missed int) error {
	var errs []error
	if period < 0 || period > 0 && period < MinHeartbeatPeriod {
		errs = append(errs, fmt.Errorf("heartbeat period %s is below %s", period, MinHeartbeatPeriod))
	}
	if missed < 0 || missed > 0 && missed < MinMissedHeartbeats {
		errs = append(errs, fmt.Errorf("missed heartbeats %d is below %d", missed, MinMissedHeartbeats))
	}
	return errors.Join(errs...)
}

func (c *Config) withDefaults() {
	if c.Leadership == nil {
		c.Leadership, _ = c.Store.(Leadership)
	}
	if c.LeaderAddr == nil {
		c.LeaderAddr = func(li store.LeaderInfo) string { return li.Addr }
	}
	if c.HeartbeatPeriod == 0 {
		c.HeartbeatPeriod = DefaultHeartbeatPeriod
	}
	if c.MissedHeartbeats == 0 {
		c.MissedHeartbeats = DefaultMissedHeartbeats
	}
	if c.ElectionGrace == 0 {
		c.ElectionGrace = DefaultElectionGrace
	}
	if c.ElectionGracePerNode == 0 {
		c.ElectionGracePerNode = DefaultElectionGracePerNode
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

type realClock struct{}

func (realClock) Now() time.Time                 { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }
