package store

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"
)

// Config configures a Store. Validate fills defaults and rejects what
// cannot work; New calls it.
type Config struct {
	// ID is this manager's Raft server ID (the node ID). Required.
	ID string
	// DataDir holds raft.db, snapshots/ and datakey.json. Required.
	DataDir string

	// StreamLayer carries Raft traffic (the mTLS layer in production). When
	// nil the store listens on BindAddr with plain TCP.
	StreamLayer raft.StreamLayer
	// BindAddr is the TCP address to listen on when StreamLayer is nil.
	BindAddr string
	// AdvertiseAddr is the address other managers dial; defaults to the
	// listener's address.
	AdvertiseAddr string

	// Bootstrap forms a new single-manager cluster when DataDir holds no
	// Raft state yet. Other managers join with AddVoter/AddLearner.
	Bootstrap bool
	// DataKey is the cluster's data key, required for a manager that joins
	// an existing cluster with an empty DataDir (a bootstrap generates one).
	// It is stored in DataDir; once there, this field is ignored.
	DataKey *DataKey
	// UnlockKey enables autolock: the data key file is sealed by it. A
	// manager whose key file is sealed and that gets no UnlockKey starts
	// locked (see Unlock).
	UnlockKey *UnlockKey

	// Forwarder sends writes and barriers from a follower to the leader.
	// When nil, a follower answers NotLeaderError.
	Forwarder Forwarder

	// Logger receives the store's and Raft's logs. Defaults to slog.Default().
	Logger *slog.Logger
	// Clock stamps CreatedAt/UpdatedAt in proposed transactions. Defaults to time.Now.
	Clock func() time.Time

	// Raft tunes replication; zero fields take LAN defaults.
	Raft RaftTuning

	// MaxEntryBytes bounds one Raft entry. Larger transactions are split
	// into chunks and applied atomically. Default 512 KiB.
	MaxEntryBytes int
	// WatchBuffer is the number of events a watcher may lag behind before
	// it is dropped with ErrWatchOverflow. Default 1024.
	WatchBuffer int
	// ApplyTimeout bounds how long a write waits to be enqueued on the
	// leader when the context has no deadline. Default 10 s.
	ApplyTimeout time.Duration

	// Metrics receives the store's Raft numbers (metrics.go); nil: the
	// store keeps its own, unregistered.
	Metrics *Metrics
}

// DefaultRaftTimeout is the Raft heartbeat and election timeout when none
// is set: a follower that hears nothing from the leader for that long
// (Raft draws the check from 1 to 2 times it) stands for election. The
// leader lease is the same (see RaftTuning). Measured on a loaded 2-vCPU machine
// (BENCHMARKS.md, Faults): 300 ms fails a killed leader over in 0.43-0.84 s with
// no leader change in 2 minutes under CPU burners; 150 ms changed leader
// 12 times in those 2 minutes; 1 s took 1.4-2.7 s.
const DefaultRaftTimeout = 300 * time.Millisecond

// minRaftTimeout is hashicorp/raft's own floor for its timeouts.
const minRaftTimeout = 5 * time.Millisecond

// RaftTuning holds Raft's timing and batching knobs.
type RaftTuning struct {
	HeartbeatTimeout time.Duration // default DefaultRaftTimeout
	ElectionTimeout  time.Duration // default DefaultRaftTimeout
	// LeaderLeaseTimeout defaults to the heartbeat timeout. It was half
	// of it (hashicorp/raft's ratio): under a deployment of 20,000 tasks
	// on 1,000 simulated nodes sharing 2 vCPUs, the leader lost its 150 ms
	// lease every few seconds and stepped down before any follower's
	// timeout ran out, and each new leader's sessions reconnecting lost it
	// again. The lease decides only when a leader that hears no quorum
	// steps down: no read is served on it (reads that must be current
	// take a barrier), and a failover's speed is the followers' timeouts.
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration // default 10 ms
	MaxAppendEntries   int           // default 512 (Raft's limit is 1024)
	SnapshotInterval   time.Duration // default 2 min
	SnapshotThreshold  uint64        // default 8192 entries
	TrailingLogs       uint64        // default 10240 entries
	SnapshotRetain     int           // default 2 snapshots
	LogCacheSize       int           // default 512 entries
	// NoSync skips fsync on the bolt log. Unsafe; benchmarks only.
	NoSync bool
}

// LAN defaults: a new leader within about a second of a leader's loss.
func (t *RaftTuning) withDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&t.HeartbeatTimeout, DefaultRaftTimeout)
	def(&t.ElectionTimeout, t.HeartbeatTimeout)
	def(&t.LeaderLeaseTimeout, t.HeartbeatTimeout)
	def(&t.CommitTimeout, 10*time.Millisecond)
	def(&t.SnapshotInterval, 2*time.Minute)
	if t.MaxAppendEntries == 0 {
		t.MaxAppendEntries = 512
	}
	if t.SnapshotThreshold == 0 {
		t.SnapshotThreshold = 8192
	}
	if t.TrailingLogs == 0 {
		t.TrailingLogs = 10240
	}
	if t.SnapshotRetain == 0 {
		t.SnapshotRetain = 2
	}
	if t.LogCacheSize == 0 {
		t.LogCacheSize = 512
	}
}

// timeouts are the Raft timeouts by name, for validation.
func (t *RaftTuning) timeouts() []struct {
	name string
	d    time.Duration
} {
	return []struct {
		name string
		d    time.Duration
	}{{"heartbeat timeout", t.HeartbeatTimeout}, {"election timeout", t.ElectionTimeout}, {"leader lease timeout", t.LeaderLeaseTimeout}}
}

// Validate fills the defaults of the Raft settings and checks them, as
// Config.Validate does (cluster/node checks its flags with it).
func (t *RaftTuning) Validate() error {
	var errs []error
	for _, to := range t.timeouts() {
		if to.d < 0 {
			errs = append(errs, fmt.Errorf("raft %s %s is negative", to.name, to.d))
		}
	}
	if t.CommitTimeout < 0 {
		errs = append(errs, fmt.Errorf("raft commit timeout %s is negative", t.CommitTimeout))
	}
	t.withDefaults()
	for _, to := range t.timeouts() {
		if to.d > 0 && to.d < minRaftTimeout {
			errs = append(errs, fmt.Errorf("raft %s %s is below %s", to.name, to.d, minRaftTimeout))
		}
	}
	if t.LeaderLeaseTimeout > t.HeartbeatTimeout {
		errs = append(errs, errors.New("raft leader lease timeout must not exceed the heartbeat timeout"))
	}
	if t.ElectionTimeout < t.HeartbeatTimeout {
		errs = append(errs, errors.New("raft election timeout must not be below the heartbeat timeout"))
	}
	if t.MaxAppendEntries > 1024 {
		errs = append(errs, errors.New("raft max append entries must not exceed 1024"))
	}
	return errors.Join(errs...)
}

// Validate fills defaults and checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.ID == "" {
		errs = append(errs, errors.New("id is required"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is required"))
	}
	if c.StreamLayer == nil && c.BindAddr == "" {
		errs = append(errs, errors.New("bind address or stream layer is required"))
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.MaxEntryBytes == 0 {
		c.MaxEntryBytes = 512 << 10
	}
	if c.MaxEntryBytes < 1024 {
		errs = append(errs, fmt.Errorf("max entry bytes %d is below 1024", c.MaxEntryBytes))
	}
	if c.WatchBuffer == 0 {
		c.WatchBuffer = 1024
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = 10 * time.Second
	}
	if err := c.Raft.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store config: %w", err)
	}
	return nil
}

func (c *Config) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.ID)
	rc.HeartbeatTimeout = c.Raft.HeartbeatTimeout
	rc.ElectionTimeout = c.Raft.ElectionTimeout
	rc.LeaderLeaseTimeout = c.Raft.LeaderLeaseTimeout
	rc.CommitTimeout = c.Raft.CommitTimeout
	rc.MaxAppendEntries = c.Raft.MaxAppendEntries
	rc.BatchApplyCh = true
	rc.SnapshotInterval = c.Raft.SnapshotInterval
	rc.SnapshotThreshold = c.Raft.SnapshotThreshold
	rc.TrailingLogs = c.Raft.TrailingLogs
	rc.Logger = newHCLogger(c.Logger.With("component", "raft"))
	return rc
}
