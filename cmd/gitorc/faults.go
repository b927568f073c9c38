package main

import (
	"fmt"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/spf13/pflag"
)

// Fault detection: how soon a manager notices a lost leader (Raft's
// timeout) and, while it leads, a lost worker (the heartbeat period it
// asks workers for, and how many periods of silence make a node down).
// They are a manager's flags, kept in its data dir, rather than a setting
// in the store: Raft's timeout must be known before the store opens, and
// the liveness settings are the leader's alone (workers get the period
// from the leader when their session starts), so giving every manager the
// same flags gives the cluster one setting. Zero means the default.

// timingState is what node.json keeps of them.
type timingState struct {
	RaftTimeout        api.Duration `json:"raft_timeout,omitempty"`
	HeartbeatPeriod    api.Duration `json:"heartbeat_period,omitempty"`
	HeartbeatTolerance int          `json:"heartbeat_tolerance,omitempty"`
}

// timingFlags are --raft-timeout, --heartbeat-period and
// --heartbeat-tolerance, on bootstrap, join and daemon.
type timingFlags struct {
	raftTimeout, heartbeatPeriod time.Duration
	heartbeatTolerance           int
}

func (f *timingFlags) add(fl *pflag.FlagSet) {
	fl.DurationVar(&f.raftTimeout, "raft-timeout", 0, fmt.Sprintf("a manager's Raft heartbeat and election timeout: a follower that hears nothing from the leader for that long stands for election (default %s); kept in the data dir", store.DefaultRaftTimeout))
	fl.DurationVar(&f.heartbeatPeriod, "heartbeat-period", 0, fmt.Sprintf("how often workers heartbeat while this manager leads (default %s); kept in the data dir", dispatcher.DefaultHeartbeatPeriod))
	fl.IntVar(&f.heartbeatTolerance, "heartbeat-tolerance", 0, fmt.Sprintf("heartbeat periods a node may be silent before this manager, leading, marks it down and moves its tasks (default %d); kept in the data dir", dispatcher.DefaultMissedHeartbeats))
}

// record checks the flags and keeps them in st: all of them (fl nil:
// bootstrap and join), or those set on fl (daemon: the others keep
// their recorded values).
func (f *timingFlags) record(fl *pflag.FlagSet, st *nodeState) error {
	t := st.timing()
	set := func(name string) bool { return fl == nil || fl.Changed(name) }
	if set("raft-timeout") {
		t.RaftTimeout = api.Duration(f.raftTimeout)
	}
	if set("heartbeat-period") {
		t.HeartbeatPeriod = api.Duration(f.heartbeatPeriod)
	}
	if set("heartbeat-tolerance") {
		t.HeartbeatTolerance = f.heartbeatTolerance
	}
	if err := t.validate(); err != nil {
		return err
	}
	if t == (timingState{}) {
		st.Timing = nil
		return nil
	}
	st.Timing = &t
	return nil
}

func (t timingState) validate() error {
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
// elections, the lease half of it (store's defaults when zero).
func (t timingState) raft() store.RaftTuning {
	return store.RaftTuning{HeartbeatTimeout: t.RaftTimeout.Std(), ElectionTimeout: t.RaftTimeout.Std()}
}

// timing is the node's fault-detection settings (zero: defaults).
func (st *nodeState) timing() timingState {
	if st.Timing == nil {
		return timingState{}
	}
	return *st.Timing
}
