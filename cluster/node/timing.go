package node

import (
	"fmt"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher"
	"github.com/gitorc/gitorc/cluster/store"
)

// Fault detection: how soon a manager notices a lost leader (Raft's
// timeout) and, while it leads, a lost worker (the heartbeat period it
// asks workers for, and how many periods of silence make a node down).
// They are a manager's flags, kept in its data dir, rather than a setting
// in the store: Raft's timeout must be known before the store opens, and
// the liveness settings are the leader's alone (workers get the period
// from the leader when their session starts), so giving every manager the
// same flags gives the cluster one setting. Zero means the default.

// Timing is what node.json keeps of them.
type Timing struct {
	RaftTimeout        api.Duration `json:"raft_timeout,omitempty"`
	HeartbeatPeriod    api.Duration `json:"heartbeat_period,omitempty"`
	HeartbeatTolerance int          `json:"heartbeat_tolerance,omitempty"`
}

// Validate checks the timing as the flags that set it would.
func (t Timing) Validate() error {
	r := t.raft()
	if err := r.Validate(); err != nil {
		return fmt.Errorf("--raft-timeout: %w", err)
	}
	if err := dispatcher.CheckLiveness(t.HeartbeatPeriod.Std(), t.HeartbeatTolerance); err != nil {
		return fmt.Errorf("--heartbeat-period, --heartbeat-tolerance: %w", err)
	}
	return nil
}

// raft is the store's Raft timing: the timeout for heartbeats and
// elections, and the leader lease (store's defaults when zero).
func (t Timing) raft() store.RaftTuning {
	return store.RaftTuning{HeartbeatTimeout: t.RaftTimeout.Std(), ElectionTimeout: t.RaftTimeout.Std()}
}

// timing is the node's fault-detection settings (zero: defaults).
func (st *State) timing() Timing {
	if st.Timing == nil {
		return Timing{}
	}
	return *st.Timing
}

// The defaults of fault detection, for the flags' help.
const (
	DefaultRaftTimeout      = store.DefaultRaftTimeout
	DefaultHeartbeatPeriod  = dispatcher.DefaultHeartbeatPeriod
	DefaultMissedHeartbeats = dispatcher.DefaultMissedHeartbeats
)
