package storetest

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/store"
)

// Options shape a test cluster. Zero values take fast test defaults.
type Options struct {
	// Managers is the number of voters (default 3).
	Managers int
	// Raft timings; defaults are tuned for fast failover on one machine.
	Raft store.RaftTuning
	// MaxEntryBytes and WatchBuffer are passed to every manager.
	MaxEntryBytes int
	WatchBuffer   int
	// NoForwarder makes followers answer NotLeaderError instead of forwarding.
	NoForwarder bool
	// Logger receives every manager's logs (default: discarded).
	Logger *slog.Logger
	// Configure, if set, edits each manager's config before it starts.
	Configure func(i int, cfg *store.Config)
	// AfterForward, if set, is called after a forwarded write has been
	// applied on the leader (from and to are Raft addresses), before its
	// answer goes back: a test may cut the link there (Net.SetDrop) to
	// lose the answer.
	AfterForward func(from, to string)
}

// TestTuning is the Raft tuning the harness uses by default: elections in
// about a second, and snapshots only when a test asks. Its timeouts are
// longer than the store's default (DefaultRaftTimeout): the harness runs
// all its managers in the test's one process, beside other packages'
// tests, where 200 ms lost the leader in the middle of tests.
func TestTuning() store.RaftTuning {
	return store.RaftTuning{
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		SnapshotInterval:   time.Hour,
		SnapshotThreshold:  1 << 30,
		TrailingLogs:       1 << 20,
	}
}

// Cluster is N managers in one process.
type Cluster struct {
	tb   testing.TB
	opts Options
	net  *Net
	key  *store.DataKey

	mu      sync.Mutex
	members []*member
}

type member struct {
	id, dir, addr string
	store         *store.Store // nil while killed
}

// New starts a cluster: manager 0 bootstraps, the others join as voters.
// It is closed by tb.Cleanup.
func New(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	if opts.Managers == 0 {
		opts.Managers = 3
	}
	if opts.Raft == (store.RaftTuning{}) {
		opts.Raft = TestTuning()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	key, err := store.NewDataKey()
	if err != nil {
		tb.Fatal(err)
	}
	c := &Cluster{tb: tb, opts: opts, net: NewNet(), key: key}
	tb.Cleanup(c.Close)
	root := tb.TempDir()
	for i := range opts.Managers {
		c.members = append(c.members, &member{id: fmt.Sprintf("m%d", i), dir: filepath.Join(root, fmt.Sprintf("m%d", i))})
	}
	for i := range c.members {
		if err := c.start(i, "127.0.0.1:0"); err != nil {
			tb.Fatalf("start manager %d: %v", i, err)
		}
	}
	if err := c.WaitFor(func() bool { return c.Store(0).IsLeader() }, 10*time.Second); err != nil {
		tb.Fatalf("manager 0 did not become leader: %v", err)
	}
	for i := 1; i < len(c.members); i++ {
		if err := c.AddVoter(i); err != nil {
			tb.Fatal(err)
		}
	}
	if err := c.WaitConverged(10 * time.Second); err != nil {
		tb.Fatal(err)
	}
	return c
}

// AddVoter makes the leader add manager i as a voter.
func (c *Cluster) AddVoter(i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m := c.member(i)
	return c.retryOnLeader(ctx, func(s *store.Store) error { return s.AddVoter(ctx, m.id, m.addr) })
}

// retryOnLeader runs fn on the leader until it succeeds or ctx ends.
func (c *Cluster) retryOnLeader(ctx context.Context, fn func(*store.Store) error) error {
	var err error
	for ctx.Err() == nil {
		if l := c.Leader(); l >= 0 {
			if err = fn(c.Store(l)); err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("on leader: %w (last error: %v)", ctx.Err(), err)
}

// AddManager creates manager N (not yet a member) and returns its index;
// make it a member with AddVoter or Store(l).AddLearner.
func (c *Cluster) AddManager() (int, error) {
	c.mu.Lock()
	i := len(c.members)
	c.members = append(c.members, &member{id: fmt.Sprintf("m%d", i), dir: filepath.Join(c.tb.TempDir(), fmt.Sprintf("m%d", i))})
	c.mu.Unlock()
	return i, c.start(i, "127.0.0.1:0")
}

func (c *Cluster) member(i int) *member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[i]
}

// Size is the number of managers, killed ones included.
func (c *Cluster) Size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.members)
}

// ID and Addr name manager i; Dir is its data directory.
func (c *Cluster) ID(i int) string   { return c.member(i).id }
func (c *Cluster) Addr(i int) string { return c.member(i).addr }
func (c *Cluster) Dir(i int) string  { return c.member(i).dir }

// Net is the cluster's fault-injecting network.
func (c *Cluster) Net() *Net { return c.net }

// RestartWith restarts a killed manager after edit changes its config.
func (c *Cluster) RestartWith(i int, edit func(*store.Config)) error {
	if c.Store(i) != nil {
		return fmt.Errorf("manager %d is running", i)
	}
	return c.startWith(i, c.member(i).addr, edit)
}

func (c *Cluster) start(i int, listen string) error { return c.startWith(i, listen, nil) }

func (c *Cluster) startWith(i int, listen string, edit func(*store.Config)) error {
	m := c.member(i)
	st, err := c.net.Listen(listen)
	if err != nil {
		return err
	}
	cfg := store.Config{
		ID:            m.id,
		DataDir:       m.dir,
		StreamLayer:   st,
		Bootstrap:     i == 0,
		DataKey:       c.key,
		Logger:        c.opts.Logger.With("manager", m.id),
		Raft:          c.opts.Raft,
		MaxEntryBytes: c.opts.MaxEntryBytes,
		WatchBuffer:   c.opts.WatchBuffer,
	}
	if !c.opts.NoForwarder {
		cfg.Forwarder = &forwarder{c: c, self: st.addr}
	}
	if c.opts.Configure != nil {
		c.opts.Configure(i, &cfg)
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := store.New(cfg)
	if err != nil {
		st.Close()
		return err
	}
	c.mu.Lock()
	m.addr, m.store = st.addr, s
	c.mu.Unlock()
	return nil
}

// Store returns manager i's store, nil while it is killed.
func (c *Cluster) Store(i int) *store.Store {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[i].store
}

// Live lists the managers that are running.
func (c *Cluster) Live() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for i, m := range c.members {
		if m.store != nil {
			out = append(out, i)
		}
	}
	return out
}

// Leader returns the index of a running manager that believes it leads,
// or -1. During a partition an old leader may still believe so for up to
// the leader lease; prefer WaitLeader(except...) after a fault.
func (c *Cluster) Leader() int {
	for _, i := range c.Live() {
		if s := c.Store(i); s != nil && s.IsLeader() {
			return i
		}
	}
	return -1
}

// WaitLeader waits for a leader other than the excluded managers.
func (c *Cluster) WaitLeader(timeout time.Duration, exclude ...int) (int, error) {
	l := -1
	err := c.WaitFor(func() bool {
		for _, i := range c.Live() {
			if contains(exclude, i) {
				continue
			}
			if s := c.Store(i); s != nil && s.IsLeader() {
				l = i
				return true
			}
		}
		return false
	}, timeout)
	return l, err
}

// Kill stops manager i abruptly (no leadership transfer); its data dir stays.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	s := c.members[i].store
	c.members[i].store = nil
	c.mu.Unlock()
	if s != nil {
		if err := s.Close(); err != nil {
			c.tb.Logf("kill %d: %v", i, err)
		}
	}
}

// Restart starts a killed manager again on the same address and data dir.
func (c *Cluster) Restart(i int) error {
	if c.Store(i) != nil {
		return fmt.Errorf("manager %d is running", i)
	}
	return c.start(i, c.member(i).addr)
}

// Partition cuts the given managers off from all the others (they still
// reach each other). Heal undoes it.
func (c *Cluster) Partition(ids ...int) {
	n := c.Size()
	for a := range n {
		for b := range n {
			if contains(ids, a) && !contains(ids, b) {
				c.net.Cut(c.Addr(a), c.Addr(b))
			}
		}
	}
}

// Heal restores every link.
func (c *Cluster) Heal() { c.net.HealAll() }

// WaitFor polls cond every 10 ms until it holds or timeout passes.
func (c *Cluster) WaitFor(cond func() bool, timeout time.Duration) error {
	return WaitFor(cond, timeout)
}

// WaitFor polls cond every 10 ms until it holds or timeout passes.
func WaitFor(cond func() bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met within %v", timeout)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for a condition
	}
}

// WaitConverged waits until every running manager has applied the same
// index as the leader.
func (c *Cluster) WaitConverged(timeout time.Duration) error {
	return c.WaitFor(func() bool {
		l := c.Leader()
		if l < 0 {
			return false
		}
		want := c.Store(l).Index()
		for _, i := range c.Live() {
			s := c.Store(i)
			if s == nil || s.Index() != want {
				return false
			}
		}
		return true
	}, timeout)
}

// Close stops every manager.
func (c *Cluster) Close() {
	for i := range c.Size() {
		c.Kill(i)
	}
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// forwarder forwards in process, through the partitions of Net.
type forwarder struct {
	c    *Cluster
	self string
}

var _ store.Forwarder = (*forwarder)(nil)

func (f *forwarder) target(addr string) (*store.Store, error) {
	// Nothing is sent in either case: the store may retry (Forwarder).
	if f.c.net.Blocked(f.self, addr) {
		return nil, fmt.Errorf("%w: %w", store.ErrLeaderUnreachable, ErrUnreachable)
	}
	for _, i := range f.c.Live() {
		if f.c.Addr(i) == addr {
			if s := f.c.Store(i); s != nil {
				return s, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: %s: connection refused", store.ErrLeaderUnreachable, addr)
}

func (f *forwarder) Apply(ctx context.Context, addr string, cmd []byte) (uint64, error) {
	if f.c.net.dropped(f.self, addr) {
		return 0, blackhole(ctx, true)
	}
	s, err := f.target(addr)
	if err != nil {
		return 0, err
	}
	idx, err := s.ApplyCommand(ctx, cmd)
	if h := f.c.opts.AfterForward; h != nil {
		h(f.self, addr)
	}
	if f.c.net.dropped(f.self, addr) { // the answer is lost
		return 0, blackhole(ctx, true)
	}
	return idx, err
}

// blackhole waits until ctx ends, as a call whose packets are dropped
// does. A write's outcome is then unknown: it may have left.
func blackhole(ctx context.Context, write bool) error {
	<-ctx.Done()
	if write {
		return fmt.Errorf("%w: no answer: %w", store.ErrUncertain, context.Cause(ctx))
	}
	return fmt.Errorf("no answer: %w", context.Cause(ctx))
}

func (f *forwarder) Barrier(ctx context.Context, addr string) (uint64, error) {
	if f.c.net.dropped(f.self, addr) {
		return 0, blackhole(ctx, false)
	}
	s, err := f.target(addr)
	if err != nil {
		return 0, err
	}
	return s.LeaderBarrier(ctx)
}
