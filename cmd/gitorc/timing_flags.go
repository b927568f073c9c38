package main

import (
	"fmt"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/node"
	"github.com/spf13/pflag"
)

// timingFlags are --raft-timeout, --heartbeat-period and
// --heartbeat-tolerance, on bootstrap, join and daemon.
type timingFlags struct {
	raftTimeout, heartbeatPeriod time.Duration
	heartbeatTolerance           int
}

func (f *timingFlags) add(fl *pflag.FlagSet) {
	fl.DurationVar(&f.raftTimeout, "raft-timeout", 0, fmt.Sprintf("a manager's Raft heartbeat and election timeout: a follower that hears nothing from the leader for that long stands for election (default %s); kept in the data dir", node.DefaultRaftTimeout))
	fl.DurationVar(&f.heartbeatPeriod, "heartbeat-period", 0, fmt.Sprintf("how often workers heartbeat while this manager leads (default %s); kept in the data dir", node.DefaultHeartbeatPeriod))
	fl.IntVar(&f.heartbeatTolerance, "heartbeat-tolerance", 0, fmt.Sprintf("heartbeat periods a node may be silent before this manager, leading, marks it down and moves its tasks (default %d); kept in the data dir", node.DefaultMissedHeartbeats))
}

// record checks the flags and keeps them in st: all of them (fl nil:
// bootstrap and join), or those set on fl (daemon: the others keep
// their recorded values).
func (f *timingFlags) record(fl *pflag.FlagSet, st *node.State) error {
	var t node.Timing
	if st.Timing != nil {
		t = *st.Timing
	}
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
	if err := t.Validate(); err != nil {
		return err
	}
	if t == (node.Timing{}) {
		st.Timing = nil
		return nil
	}
	st.Timing = &t
	return nil
}
