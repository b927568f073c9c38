package store

import (
	"strings"
	"testing"
	"time"
)

func TestConfigRaftTiming(t *testing.T) {
	base := func(r RaftTuning) *Config {
		return &Config{ID: "m1", DataDir: t.TempDir(), BindAddr: "127.0.0.1:0", Raft: r}
	}
	ms := time.Millisecond
	for _, tc := range []struct {
		name             string
		in               RaftTuning
		hb, elect, lease time.Duration
		err              string // substring; empty: valid
	}{
		{name: "defaults", hb: DefaultRaftTimeout, elect: DefaultRaftTimeout, lease: DefaultRaftTimeout},
		{name: "heartbeat only: election and lease follow", in: RaftTuning{HeartbeatTimeout: 300 * ms}, hb: 300 * ms, elect: 300 * ms, lease: 300 * ms},
		{name: "all set", in: RaftTuning{HeartbeatTimeout: time.Second, ElectionTimeout: 2 * time.Second, LeaderLeaseTimeout: time.Second},
			hb: time.Second, elect: 2 * time.Second, lease: time.Second},
		{name: "negative heartbeat", in: RaftTuning{HeartbeatTimeout: -time.Second}, err: "heartbeat timeout -1s is negative"},
		{name: "negative commit", in: RaftTuning{CommitTimeout: -ms}, err: "commit timeout -1ms is negative"},
		{name: "below raft's floor", in: RaftTuning{HeartbeatTimeout: 2 * ms, ElectionTimeout: 2 * ms, LeaderLeaseTimeout: ms}, err: "heartbeat timeout 2ms is below 5ms"},
		{name: "lease above heartbeat", in: RaftTuning{HeartbeatTimeout: 100 * ms, LeaderLeaseTimeout: 200 * ms}, err: "lease timeout must not exceed"},
		{name: "election below heartbeat", in: RaftTuning{HeartbeatTimeout: 500 * ms, ElectionTimeout: 200 * ms}, err: "election timeout must not be below"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base(tc.in)
			err := c.Validate()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Validate() = %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Raft.HeartbeatTimeout != tc.hb || c.Raft.ElectionTimeout != tc.elect || c.Raft.LeaderLeaseTimeout != tc.lease {
				t.Errorf("timing = %s/%s/%s, want %s/%s/%s", c.Raft.HeartbeatTimeout, c.Raft.ElectionTimeout, c.Raft.LeaderLeaseTimeout, tc.hb, tc.elect, tc.lease)
			}
			rc := c.raftConfig()
			if rc.HeartbeatTimeout != tc.hb || rc.ElectionTimeout != tc.elect || rc.LeaderLeaseTimeout != tc.lease {
				t.Errorf("raft config %s/%s/%s, want the tuning's", rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout)
			}
		})
	}
}
