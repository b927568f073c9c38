package main

import (
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/node"
	"github.com/spf13/pflag"
)

func TestTimingFlags(t *testing.T) {
	parse := func(t *testing.T, args ...string) (*timingFlags, *pflag.FlagSet) {
		var f timingFlags
		fl := pflag.NewFlagSet("test", pflag.ContinueOnError)
		f.add(fl)
		if err := fl.Parse(args); err != nil {
			t.Fatal(err)
		}
		return &f, fl
	}
	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{name: "raft timeout below raft's floor", args: []string{"--raft-timeout", "1ms"}, err: "--raft-timeout: raft heartbeat timeout 1ms is below 5ms"},
		{name: "negative raft timeout", args: []string{"--raft-timeout", "-1s"}, err: "is negative"},
		{name: "heartbeat too often", args: []string{"--heartbeat-period", "10ms"}, err: "heartbeat period 10ms is below 100ms"},
		{name: "tolerance of one beat", args: []string{"--heartbeat-tolerance", "1"}, err: "missed heartbeats 1 is below 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := parse(t, tc.args...)
			st := &node.State{}
			if err := f.record(nil, st); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("record = %v, want an error with %q", err, tc.err)
			}
		})
	}

	// Bootstrap without the flags records nothing: the defaults apply.
	f, _ := parse(t)
	st := &node.State{}
	if err := f.record(nil, st); err != nil || st.Timing != nil {
		t.Fatalf("no flags: timing %+v, err %v; want none", st.Timing, err)
	}
	// Bootstrap with them records them all; the store and dispatcher get them.
	f, _ = parse(t, "--raft-timeout", "300ms", "--heartbeat-period", "1s", "--heartbeat-tolerance", "4")
	if err := f.record(nil, st); err != nil {
		t.Fatal(err)
	}
	want := node.Timing{RaftTimeout: api.Duration(300 * time.Millisecond), HeartbeatPeriod: api.Duration(time.Second), HeartbeatTolerance: 4}
	if st.Timing == nil || *st.Timing != want {
		t.Fatalf("recorded %+v, want %+v", st.Timing, want)
	}
	// Daemon changes only what it is given; the rest stays as recorded.
	f, fl := parse(t, "--heartbeat-period", "2s")
	if err := f.record(fl, st); err != nil {
		t.Fatal(err)
	}
	want.HeartbeatPeriod = api.Duration(2 * time.Second)
	if st.Timing == nil || *st.Timing != want {
		t.Errorf("after daemon --heartbeat-period 2s: %+v, want %+v", st.Timing, want)
	}
	// A value the daemon refuses leaves the state as it was.
	f, fl = parse(t, "--heartbeat-tolerance", "1")
	if err := f.record(fl, st); err == nil || st.Timing == nil || *st.Timing != want {
		t.Errorf("refused tolerance: err %v, state %+v; want an error and %+v", err, st.Timing, want)
	}
	// Zero returns a setting to its default.
	f, fl = parse(t, "--raft-timeout", "0", "--heartbeat-period", "0", "--heartbeat-tolerance", "0")
	if err := f.record(fl, st); err != nil || st.Timing != nil {
		t.Errorf("all back to default: timing %+v, err %v; want none", st.Timing, err)
	}
}
