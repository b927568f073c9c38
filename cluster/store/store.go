package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Forwarder carries a follower's writes and read barriers to the leader.
// The in-process harness and, later, the managers' mTLS gRPC API implement
// it; the receiving side calls Store.ApplyCommand and Store.LeaderBarrier.
type Forwarder interface {
	// Apply commits an encoded transaction on the leader at leaderAddr (its
	// Raft address) and returns the Raft index it committed at. Errors
	// from the leader pass through so errors.Is works (ErrVersionConflict,
	// ErrUncertain …); a transport failure after the command may have been
	// delivered must wrap ErrUncertain, one before it must not, and should
	// wrap ErrLeaderUnreachable (the store then retries once Raft names a
	// leader).
	Apply(ctx context.Context, leaderAddr string, cmd []byte) (uint64, error)
	// Barrier returns an index at or after every write committed before
	// the call, as LeaderBarrier does on the leader.
	Barrier(ctx context.Context, leaderAddr string) (uint64, error)
}

// Store is one manager's replica of the cluster state.
type Store struct {
	cfg Config
	log *slog.Logger
	hub *hub
	fsm *fsm

	mu     sync.Mutex // serialises Unlock and Close
	closed atomic.Bool
	n      atomic.Pointer[node] // nil while locked
	done   chan struct{}
	wg     sync.WaitGroup

	leaders leaderFanout
}

// node is the running Raft half of a Store.
type node struct {
	raft   *raft.Raft
	bolt   *raftboltdb.BoltStore
	key    *DataKey
	addr   string
	commit *committer
}

// New opens the store in cfg.DataDir and starts Raft. When the data key
// is sealed by autolock and cfg.UnlockKey is nil, the store starts locked:
// every call returns ErrLocked until Unlock succeeds.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	s := &Store{cfg: cfg, log: cfg.Logger.With("component", "store", logKeyID, cfg.ID),
		hub: newHub(cfg.WatchBuffer), done: make(chan struct{})}
	s.fsm = newFSM(s.log, s.hub)
	s.leaders.subs = map[chan LeaderInfo]struct{}{}
	key, err := resolveDataKey(&s.cfg)
	if errors.Is(err, ErrLocked) {
		s.log.Warn("manager is locked; waiting for the unlock key")
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.start(key); err != nil {
		return nil, err
	}
	return s, nil
}

// Locked reports whether the store waits for its unlock key (Unlock).
func (s *Store) Locked() bool { return s.n.Load() == nil && !s.closed.Load() }

// Unlock opens an autolocked store's data key with key and starts Raft.
// It is a no-op on a store that is not locked.
func (s *Store) Unlock(key *UnlockKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	if s.n.Load() != nil {
		return nil
	}
	kf, err := loadKeyFile(s.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	dk, err := kf.unwrap(key)
	if err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	s.cfg.UnlockKey = key
	return s.start(dk)
}

// SetUnlockKey turns autolock on (or rotates its key) with a non-nil key,
// and off with nil, by rewriting this manager's data key file.
func (s *Store) SetUnlockKey(key *UnlockKey) error {
	n, err := s.get()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := writeKeyFile(s.cfg.DataDir, n.key, key); err != nil {
		return fmt.Errorf("set unlock key: %w", err)
	}
	s.cfg.UnlockKey = key
	return nil
}

// ExportDataKey returns the cluster data key, for handing to a manager
// that joins (over an authenticated, encrypted channel only).
func (s *Store) ExportDataKey() (*DataKey, error) {
	n, err := s.get()
	if err != nil {
		return nil, err
	}
	k := *n.key
	return &k, nil
}

func (s *Store) start(key *DataKey) (err error) {
	cfg := &s.cfg
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.DataDir, "raft.db"), NoSync: cfg.Raft.NoSync})
	if err != nil {
		return fmt.Errorf("open raft log: %w", err)
	}
	defer func() {
		if err != nil {
			bolt.Close()
		}
	}()
	logs, err := raft.NewLogCache(cfg.Raft.LogCacheSize, &sealedLogs{LogStore: bolt, key: key})
	if err != nil {
		return fmt.Errorf("raft log cache: %w", err)
	}
	hl := newHCLogger(cfg.Logger.With("component", "raft", logKeyID, cfg.ID))
	files, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, cfg.Raft.SnapshotRetain, hl)
	if err != nil {
		return fmt.Errorf("open snapshots: %w", err)
	}
	snaps := &sealedSnapshots{SnapshotStore: files, key: key}
	stream := cfg.StreamLayer
	if stream == nil {
		if stream, err = ListenTCP(cfg.BindAddr, cfg.AdvertiseAddr); err != nil {
			return err
		}
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: 3, Timeout: 10 * time.Second, Logger: hl})
	defer func() {
		if err != nil {
			trans.Close()
		}
	}()
	rc := cfg.raftConfig()
	if cfg.Bootstrap {
		has, err := raft.HasExistingState(logs, bolt, snaps)
		if err != nil {
			return fmt.Errorf("inspect raft state: %w", err)
		}
		if !has {
			conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter,
				ID: raft.ServerID(cfg.ID), Address: trans.LocalAddr()}}}
			if err := raft.BootstrapCluster(rc, logs, bolt, snaps, trans, conf); err != nil {
				return fmt.Errorf("bootstrap: %w", err)
			}
		}
	}
	r, err := raft.NewRaft(rc, timedFSM{s.fsm, cfg.Metrics}, logs, bolt, snaps, trans)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	n := &node{raft: r, bolt: bolt, key: key, addr: string(trans.LocalAddr())}
	n.commit = newCommitter(s, n)
	obs := make(chan raft.Observation, 64)
	r.RegisterObserver(raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	}))
	s.n.Store(n)
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.leaderLoop(n, obs)
	}()
	go func() {
		defer s.wg.Done()
		n.commit.run()
	}()
	s.log.Info("store started", logKeyAddr, n.addr)
	return nil
}

// get returns the running node, or ErrClosed / ErrLocked.
func (s *Store) get() (*node, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	n := s.n.Load()
	if n == nil {
		return nil, ErrLocked
	}
	return n, nil
}

// Run blocks until ctx ends, then closes the store. It lets the
// composition root run the store like its other long-running parts.
func (s *Store) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-s.done:
	}
	return s.Close()
}

// Close stops Raft, closes the log and every watcher, and waits for the
// store's goroutines. It is safe to call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	close(s.done)
	var errs []error
	if n := s.n.Load(); n != nil {
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("shutdown raft: %w", err))
		}
		if err := n.bolt.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft log: %w", err))
		}
	}
	s.wg.Wait()
	s.cfg.Metrics.setLeader(false)
	s.hub.closeAll(ErrClosed)
	s.leaders.closeAll()
	return errors.Join(errs...)
}

// ID is this manager's Raft server ID.
func (s *Store) ID() string { return s.cfg.ID }

// Addr is this manager's Raft address, empty while locked.
func (s *Store) Addr() string {
	if n := s.n.Load(); n != nil {
		return n.addr
	}
	return ""
}

// Index is the Raft index of the last entry applied to the local state.
func (s *Store) Index() uint64 {
	idx, _ := s.fsm.applied()
	return idx
}

// View runs fn on a consistent snapshot of the local state. On a follower
// the state may lag the leader; use ConsistentView to read your own and
// everyone's completed writes.
func (s *Store) View(fn func(ReadTx) error) error {
	n, err := s.get()
	if err != nil {
		return err
	}
	txn, idx := s.fsm.view()
	return fn(&readTx{txn: txn, index: idx, key: n.key})
}

// ReadView returns a read view of the current state that stays valid, and
// unchanged, for as long as the caller keeps it (the state is an immutable
// go-memdb tree): View for readers that share one state between calls.
func (s *Store) ReadView() (ReadTx, error) {
	n, err := s.get()
	if err != nil {
		return nil, err
	}
	txn, idx := s.fsm.view()
	return &readTx{txn: txn, index: idx, key: n.key}, nil
}

// ConsistentView is View after Barrier: the view holds every write that
// completed anywhere in the cluster before the call (linearizable read).
func (s *Store) ConsistentView(ctx context.Context, fn func(ReadTx) error) error {
	if err := s.Barrier(ctx); err != nil {
		return err
	}
	return s.View(fn)
}

// Watch returns a watcher of committed changes of the given kinds (all
// kinds when none is given), starting after the current index.
func (s *Store) Watch(kinds ...Kind) (*Watcher, error) {
	if _, err := s.get(); err != nil {
		return nil, err
	}
	return s.hub.add(kinds), nil
}

// ViewAndWatch runs fn on the current state and returns a watcher that
// delivers exactly the changes committed after that state.
func (s *Store) ViewAndWatch(fn func(ReadTx) error, kinds ...Kind) (*Watcher, error) {
	n, err := s.get()
	if err != nil {
		return nil, err
	}
	s.fsm.mu.RLock()
	txn, idx := s.fsm.db.Txn(false), s.fsm.index
	w := s.hub.add(kinds)
	s.fsm.mu.RUnlock()
	if err := fn(&readTx{txn: txn, index: idx, key: n.key}); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// Update builds a transaction with fn and commits it as one Raft entry (or
// atomically as several bounded chunks when it is large). It returns the
// commit index, which is the Version of every object it created or
// updated; the objects passed to Create and Update are stamped with their
// new Meta. On a follower the transaction is forwarded to the leader and
// Update returns once the local state has applied it.
//
// Errors: ErrVersionConflict, ErrNotFound, ErrExists, ErrNameConflict
// (nothing applied); NotLeaderError, ErrNoLeader (nothing applied);
// ErrUncertain (proposed, outcome unknown).
func (s *Store) Update(ctx context.Context, fn func(Tx) error) (uint64, error) {
	n, err := s.get()
	if err != nil {
		return 0, err
	}
	txn, idx := s.fsm.view()
	w := &writeTx{readTx: readTx{txn: txn, index: idx, key: n.key}, now: s.cfg.Clock().UTC().Round(0)}
	if err := fn(w); err != nil {
		return 0, err
	}
	if len(w.ops) == 0 {
		return idx, nil
	}
	t := &txnCmd{Time: w.now, Ops: w.ops}
	if err := checkOps(t.Ops); err != nil {
		return 0, err
	}
	cmd, err := encodeTxn(t)
	if err != nil {
		return 0, err
	}
	index, err := s.proposeSettled(ctx, n, cmd)
	if err != nil {
		return 0, err
	}
	w.stamp(index)
	return index, nil
}

// ApplyCommand commits a transaction encoded by a follower's Update; it is
// the leader's side of Forwarder.Apply. It never forwards again: on a
// follower it returns NotLeaderError.
func (s *Store) ApplyCommand(ctx context.Context, cmd []byte) (uint64, error) {
	n, err := s.get()
	if err != nil {
		return 0, err
	}
	if n.raft.State() != raft.Leader {
		return 0, s.notLeader(n)
	}
	if _, err := decodeTxn(cmd); err != nil {
		return 0, err
	}
	return s.applyLocal(ctx, n, cmd)
}

func (s *Store) notLeader(n *node) error {
	addr, _ := n.raft.LeaderWithID()
	return &NotLeaderError{Addr: string(addr)}
}

// leaderAddr waits (within ctx and ApplyTimeout) until a leader is known.
func (s *Store) leaderAddr(ctx context.Context, n *node) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	ch, stop := s.WatchLeader()
	defer stop()
	for {
		if addr, _ := n.raft.LeaderWithID(); addr != "" {
			return string(addr), nil
		}
		select {
		case <-ctx.Done():
			return "", ErrNoLeader
		case <-ch:
		case <-time.After(s.cfg.Raft.HeartbeatTimeout / 4): // belt and braces: observations may be dropped
		}
	}
}

func (s *Store) propose(ctx context.Context, n *node, cmd []byte) (uint64, error) {
	if n.raft.State() == raft.Leader {
		return s.applyLocal(ctx, n, cmd)
	}
	var idx uint64
	local, err := s.toLeader(ctx, n, "forward", func(ctx context.Context, addr string) (err error) {
		idx, err = s.cfg.Forwarder.Apply(ctx, addr, cmd)
		return err
	})
	if err != nil {
		return 0, err
	}
	if local { // just elected
		return s.applyLocal(ctx, n, cmd)
	}
	if err := s.waitApplied(ctx, idx); err != nil {
		s.log.Debug("forwarded write committed but not yet applied locally", logKeyIndex, idx, logKeyErr, err)
	}
	return idx, nil
}

// toLeader runs call (a forward to the leader at its Raft address) on a
// follower, and again each time it fails without the leader having seen
// it: the leader this manager knew is unreachable (killed, cut off) or
// answers that it no longer leads. Each retry waits for Raft to name a
// leader other than the one that failed, or a pause that grows from a
// tenth of the heartbeat timeout to the timeout, so a write sent in an
// election goes through once the election ends, within ctx and
// ApplyTimeout. local is true, and call not run, when this manager is
// the leader by then. Other errors (the leader's answers, ErrUncertain)
// end it at once.
func (s *Store) toLeader(ctx context.Context, n *node, what string, call func(context.Context, string) error) (local bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	pause := s.cfg.Raft.HeartbeatTimeout / 10
	for {
		if n.raft.State() == raft.Leader {
			return true, nil
		}
		addr, err := s.leaderAddr(ctx, n)
		if err != nil {
			return false, err
		}
		if addr == n.addr {
			return true, nil
		}
		if s.cfg.Forwarder == nil {
			return false, &NotLeaderError{Addr: addr}
		}
		cctx, stop := s.untilLeaderChanges(ctx, n, addr)
		err = call(cctx, addr)
		changed := stop()
		if err == nil {
			return false, nil
		}
		if changed && ctx.Err() == nil {
			// Raft named another leader while the call was in flight (the
			// one it went to is cut off, or stepped down): a write's fate
			// is for the caller to settle; anything else goes to the new
			// leader at once.
			if errors.Is(err, ErrUncertain) {
				return false, fmt.Errorf("%s to %s: %w: %w", what, addr, errLeaderChanged, err)
			}
			s.log.Debug("leader changed during the call: trying the new one", "leader", addr, logKeyErr, err)
			continue
		}
		if !errors.Is(err, ErrLeaderUnreachable) && !errors.Is(err, ErrNotLeader) || errors.Is(err, ErrUncertain) {
			return false, fmt.Errorf("%s to %s: %w", what, addr, err)
		}
		s.log.Debug("leader unavailable: waiting for Raft to name one", "leader", addr, logKeyErr, err)
		if !s.awaitOtherLeader(ctx, n, addr, pause) {
			return false, fmt.Errorf("%w: %s to %s: %w", ErrNoLeader, what, addr, err)
		}
		pause = min(2*pause, s.cfg.Raft.HeartbeatTimeout)
	}
}

// awaitOtherLeader waits until Raft names a leader other than addr, or
// pause has passed; false when ctx ended first.
func (s *Store) awaitOtherLeader(ctx context.Context, n *node, addr string, pause time.Duration) bool {
	ch, stop := s.WatchLeader()
	defer stop()
	t := time.NewTimer(pause)
	defer t.Stop()
	for {
		if a, _ := n.raft.LeaderWithID(); a != "" && string(a) != addr {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-s.done:
			return false
		case <-t.C:
			return true
		case <-ch:
		}
	}
}

// applyLocal proposes cmd on this node, which believes it leads: with
// the concurrent proposals it may be grouped with (commit.go) when it fits
// in one entry, else as chunks.
func (s *Store) applyLocal(ctx context.Context, n *node, cmd []byte) (uint64, error) {
	if len(cmd) <= s.cfg.MaxEntryBytes {
		return n.commit.submit(ctx, cmd)
	}
	chunks := splitTxn(cmd, s.cfg.MaxEntryBytes)
	for i, c := range chunks {
		last := i == len(chunks)-1
		idx, err := s.applyEntry(ctx, n, c, last)
		if err == nil && last {
			return idx, nil
		}
		if err != nil {
			if i > 0 && n.raft.State() == raft.Leader {
				id, _ := decodeChunk(c)
				actx, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout)
				_, aerr := s.applyEntry(actx, n, encodeAbort(id.id), false)
				cancel()
				if aerr != nil {
					s.log.Debug("abort chunked transaction", logKeyErr, aerr)
				}
			}
			return 0, fmt.Errorf("chunk %d of %d: %w", i+1, len(chunks), err)
		}
	}
	return 0, fmt.Errorf("%w: empty transaction", ErrInvalid) // unreachable: cmd is not empty
}

// applyEntry proposes one entry and waits for it to apply. decisive says
// whether the entry decides the transaction: if a decisive entry's fate
// is unknown, so is the transaction's; a chunk that is not the last one
// cannot make a transaction apply on its own.
func (s *Store) applyEntry(ctx context.Context, n *node, data []byte, decisive bool) (uint64, error) {
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return 0, ctx.Err()
		}
	}
	start := time.Now()
	f := n.raft.Apply(data, timeout)
	if err := s.wait(ctx, f); err != nil {
		return 0, s.futureErr(n, err, decisive)
	}
	s.cfg.Metrics.commit.Observe(time.Since(start).Seconds())
	if res, ok := f.Response().(*applyResult); ok && res.err != nil {
		return 0, res.err
	}
	return f.Index(), nil
}

// futureErr turns the error of waiting for an entry's future into the
// store's: nothing applied (NotLeaderError, a timeout to enqueue), or,
// for a decisive entry proposed and then lost sight of, ErrUncertain.
func (s *Store) futureErr(n *node, err error, decisive bool) error {
	switch {
	case errors.Is(err, errWaitEnded):
		if decisive {
			return fmt.Errorf("%w: %w", ErrUncertain, err)
		}
		return err
	case errors.Is(err, raft.ErrNotLeader):
		return s.notLeader(n)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("propose: %w", err)
	case errors.Is(err, raft.ErrRaftShutdown):
		if decisive {
			return fmt.Errorf("%w: %w", ErrUncertain, ErrClosed)
		}
		return ErrClosed
	default: // leadership lost and the like
		if decisive {
			return fmt.Errorf("%w: %w", ErrUncertain, err)
		}
		return fmt.Errorf("propose: %w", err)
	}
}

// errWaitEnded marks a wait for a Raft future cut short by ctx or Close.
var errWaitEnded = errors.New("stopped waiting")

// wait waits for a Raft future, but no longer than ctx or the store's
// life: with BatchApplyCh a future queued when Raft shuts down is never
// resolved, so Error alone could block forever. The waiting goroutine
// ends when the future resolves (or leaks with it, if it never does).
func (s *Store) wait(ctx context.Context, f raft.Future) error {
	errc := make(chan error, 1)
	go func() { errc <- f.Error() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", errWaitEnded, ctx.Err())
	case <-s.done:
		return fmt.Errorf("%w: %w", errWaitEnded, ErrClosed)
	}
}

// waitApplied waits until the local state has applied index.
func (s *Store) waitApplied(ctx context.Context, index uint64) error {
	for {
		cur, ch := s.fsm.applied()
		if cur >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for index %d: %w", index, ctx.Err())
		case <-s.done:
			return ErrClosed
		}
	}
}

// Barrier returns once the local state holds every write that completed
// anywhere before the call. On the leader it commits a Raft barrier; a
// follower asks the leader (Forwarder.Barrier) and waits to catch up.
func (s *Store) Barrier(ctx context.Context) error {
	n, err := s.get()
	if err != nil {
		return err
	}
	if n.raft.State() == raft.Leader {
		_, err := s.LeaderBarrier(ctx)
		return err
	}
	var idx uint64
	local, err := s.toLeader(ctx, n, "barrier", func(ctx context.Context, addr string) (err error) {
		idx, err = s.cfg.Forwarder.Barrier(ctx, addr)
		return err
	})
	if err != nil {
		return err
	}
	if local {
		_, err := s.LeaderBarrier(ctx)
		return err
	}
	return s.waitApplied(ctx, idx)
}

// LeaderBarrier commits a Raft barrier on the leader and returns the index
// of the local state, which then covers every write completed before the
// call. It is the leader's side of Forwarder.Barrier.
func (s *Store) LeaderBarrier(ctx context.Context) (uint64, error) {
	n, err := s.get()
	if err != nil {
		return 0, err
	}
	if n.raft.State() != raft.Leader {
		return 0, s.notLeader(n)
	}
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := s.wait(ctx, n.raft.Barrier(timeout)); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return 0, s.notLeader(n)
		}
		return 0, fmt.Errorf("barrier: %w", err)
	}
	return s.Index(), nil
}

// Snapshot makes Raft snapshot the state now and compact its log.
func (s *Store) Snapshot() error {
	n, err := s.get()
	if err != nil {
		return err
	}
	if err := n.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}
