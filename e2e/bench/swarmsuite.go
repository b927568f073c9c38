package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitorc/gitorc/e2e/harness"
)

// suiteOptions are the -suite swarm flags.
type suiteOptions struct {
	bin                   string
	rounds                int
	systems               []string // in the order each round runs them
	poll, settle, timeout time.Duration
	keepLogs              string
	profileDir            string
}

// parseSystems checks -systems: gitorc, swarm or both, Swarm first in a
// round (the order of the measurements this suite reproduces).
func parseSystems(s string) ([]string, error) {
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name != "gitorc" && name != "swarm" {
			return nil, fmt.Errorf("-systems: unknown system %q (want gitorc, swarm)", name)
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return strings.Compare(b, a) }) // swarm, gitorc
	return out, nil
}

// runSwarmSuite runs the rounds, alternating systems, one running at a
// time, and prints the table. It returns the exit code.
func runSwarmSuite(o suiteOptions) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	images, err := benchImages()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	var run []string
	for _, sys := range o.systems {
		why := ""
		switch sys {
		case "swarm":
			why = swarmRequirements()
		case "gitorc":
			why = harness.Requirements()
		}
		if why != "" {
			fmt.Fprintf(os.Stderr, "bench: skipping %s: %s\n", sys, why)
			continue
		}
		run = append(run, sys)
	}
	if len(run) == 0 {
		fmt.Fprintln(os.Stderr, "bench: no system to run")
		return 1
	}
	s := &suite{poll: o.poll, settle: o.settle, timeout: o.timeout, log: os.Stderr, results: newResults(), keepLogs: o.keepLogs, profileDir: o.profileDir}
	load0 := loadAverage()
	started := time.Now()
	failed := false
	var roundTimes []string
	for r := 1; r <= o.rounds && ctx.Err() == nil; r++ {
		for _, sys := range run {
			s.roundNo = r
			fmt.Fprintf(os.Stderr, "round %d, %s (load average %s)\n", r, sys, loadAverage())
			t0 := time.Now()
			var err error
			switch sys {
			case "swarm":
				err = s.swarmRound(ctx, r, images)
			case "gitorc":
				err = s.gitorcRound(ctx, r, o.bin, images)
			}
			took := time.Since(t0).Round(time.Second)
			roundTimes = append(roundTimes, fmt.Sprintf("%s r%d %s", sys, r, took))
			if err != nil {
				failed = true
				fmt.Fprintf(os.Stderr, "round %d, %s: %v\n", r, sys, err)
			}
			fmt.Fprintf(os.Stderr, "round %d, %s: %s\n", r, sys, took)
		}
	}
	fmt.Printf("Single node, %d round(s) alternating %s, one system running at a time; every step timed from just before its command "+
		"until the state is first seen in the system's API, polled every %s; %s between steps.\n",
		o.rounds, strings.Join(run, ", "), o.poll, o.settle)
	fmt.Printf("Machine: %d CPUs, load average %s at the start, %s at the end; %s in all (%s).\n",
		runtime.NumCPU(), load0, loadAverage(), time.Since(started).Round(time.Second), strings.Join(roundTimes, ", "))
	if v := versions(run); v != "" {
		fmt.Println(v)
	}
	fmt.Println()
	s.results.table(os.Stdout, run)
	if failed || ctx.Err() != nil {
		return 1
	}
	return 0
}

// gitorcRound runs one round on a fresh single-node cluster.
func (s *suite) gitorcRound(ctx context.Context, n int, bin string, images []benchImage) error {
	var err error
	ran := false
	testing.Benchmark(func(b *testing.B) {
		if ran { // testing.Benchmark calls again when a run was short
			return
		}
		ran = true
		g, serr := startGitorc(b, bin, images)
		if serr != nil {
			err = serr
			return
		}
		err = s.round(ctx, g, b.TempDir())
		serr = g.stop()
		s.keep(g, n)
		if serr != nil && err == nil {
			err = serr
		}
	})
	if !ran {
		return fmt.Errorf("the gitorc round did not run")
	}
	return err
}

// swarmRound runs one round on a fresh dockerd and swarm.
func (s *suite) swarmRound(ctx context.Context, n int, images []benchImage) error {
	dir, err := os.MkdirTemp("", "gitorc-bench-swarm-")
	if err != nil {
		return err
	}
	sys, err := startSwarm(dir, images, s.log)
	if err == nil {
		work := dir + "/stacks"
		if err = os.Mkdir(work, 0o755); err == nil {
			err = s.round(ctx, sys, work)
		}
		serr := sys.stop()
		s.keep(sys, n)
		if serr != nil && err == nil {
			err = serr
		}
	}
	unmountUnder(dir)
	if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// versions names what ran: containerd, runc and, for Swarm, docker.io.
func versions(run []string) string {
	first := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).Output()
		if err != nil {
			return "?"
		}
		l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return l
	}
	v := []string{first("containerd", "--version"), first("runc", "--version")}
	if slices.Contains(run, "swarm") {
		v = append(v, first(dockerd, "--version"))
	}
	return "Versions: " + strings.Join(v, "; ") + "."
}
