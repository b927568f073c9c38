package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// dockerView is the part of the host state that only our dockerd could
// have changed (other tests on the machine add links and nftables tables
// of their own).
func dockerView(st hostState) hostState {
	out := hostState{ipForward: st.ipForward, rules: st.rules, files: st.files}
	for _, l := range st.links {
		if strings.HasPrefix(l, "docker") {
			out.links = append(out.links, l)
		}
	}
	for _, t := range st.nftTables {
		f := strings.Fields(t)
		if len(f) == 3 && (f[1] == "ip" || f[1] == "ip6") && slices.Contains(iptablesTables, f[2]) {
			out.nftTables = append(out.nftTables, t)
		}
	}
	return out
}

// The Swarm side leaves the host as it found it: a dockerd that ran a
// service on an overlay network leaves no link, iptables rule or chain,
// nftables table, file or process behind, and forwarding as it was.
func TestSwarmLeavesHostAsFound_Root(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (dockerd)")
	}
	if why := swarmRequirements(); why != "" {
		t.Skip("swarm: " + why)
	}
	// A dockerd changes the host's firewall and links while it runs: never
	// beside the other tests of make test, only when asked (make bench-swarm
	// users check their teardown with it).
	if os.Getenv("GITORC_TEST_SWARM") == "" {
		t.Skip("set GITORC_TEST_SWARM=1 to run a dockerd and check its teardown")
	}
	images, err := benchImages()
	if err != nil {
		t.Fatal(err)
	}
	before0 := takeHostState()
	before := dockerView(before0)
	dir := t.TempDir()
	sys, err := startSwarm(dir, images, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = sys.stop()
		}
	})
	ctx := context.Background()
	file := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(file, []byte(stackFile(sys.header(), sys.image("web1"), 2, "stop-first", "pause", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := sys.deploy(ctx, "s10", file); err != nil {
		t.Fatal(err)
	}
	s := &suite{poll: 100 * time.Millisecond, timeout: 2 * time.Minute, log: io.Discard, results: newResults()}
	if _, err := s.wait(ctx, sys, "s10", "s10_web", start, want{running: 2, image: sys.image("web1")}); err != nil {
		t.Fatal(err)
	}
	if o, err := sys.observe(ctx, "s10_web", start); err != nil || o.vip == "" {
		t.Fatalf("no VIP on the stack's network: %+v, %v", o, err)
	}
	if during := dockerView(takeHostState()); !slices.Contains(during.links, "docker_gwbridge") {
		t.Fatalf("no docker_gwbridge while the swarm runs (links %v): the test would prove nothing", during.links)
	}
	stopped = true
	if err := sys.stop(); err != nil {
		t.Error(err)
	}
	afterAll := takeHostState()
	after := dockerView(afterAll)
	if others := newLinks(before0.links, afterAll.links); len(others) > 0 {
		// Someone else's links came up meanwhile: forwarding stays as it is.
		t.Logf("links came up meanwhile (%v): ip_forward not compared", others)
		after.ipForward = before.ipForward
	}
	if diff := cmp.Diff(before, after, cmp.AllowUnexported(hostState{})); diff != "" {
		t.Errorf("host state (-before +after):\n%s", diff)
	}
	if left := processes(func(c string) bool { return strings.Contains(c, dir+"/") }); len(left) > 0 {
		t.Errorf("processes left: %v", left)
	}
}
