package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/e2e/gitopsenv"
	"github.com/gitorc/gitorc/e2e/gitserver"
)

func main() {
	testing.Init()
	hosts := flag.Int("hosts", 3, "hosts in the cluster (the first is the manager)")
	replicas := flag.Int("replicas", 10, "replicas of each pushed service")
	pushes := flag.Int("pushes", 20, "measured pushes")
	bin := flag.String("bin", "", "the gitorc binary (default: built from ./cmd/gitorc)")
	mode := flag.String("mode", "update", "update: each push changes the service's environment (a start-first rolling update of every replica at once); replace: each push replaces the service by a new one")
	suiteName := flag.String("suite", "push", "push: push-to-running with webhooks on -hosts hosts; swarm: the side-by-side scenarios on gitorc and Docker Swarm")
	rounds := flag.Int("rounds", 3, "with -suite swarm: rounds per system, alternating")
	systems := flag.String("systems", "gitorc,swarm", "with -suite swarm: the systems to run (Swarm only where docker.io is installed)")
	poll := flag.Duration("poll", 100*time.Millisecond, "with -suite swarm: how often the systems' APIs are polled")
	settle := flag.Duration("settle", 3*time.Second, "with -suite swarm: pause between steps")
	stepTimeout := flag.Duration("step-timeout", 3*time.Minute, "with -suite swarm: give a step up after this long")
	keepLogs := flag.String("keep-logs", os.Getenv("BENCH_KEEP_LOGS"), "with -suite swarm: copy each round's daemon logs into DIR/<system>-r<round>/ (default $BENCH_KEEP_LOGS)")
	profileDir := flag.String("profile", "", "with -suite swarm: write gitorc's CPU profiles of deploy 10, deploy 50 and scale (a 5-10 s window from the command) and an execution trace of the killed task's replacement (3 s) to DIR/gitorc-r<round>/")
	flag.Parse()
	if *suiteName != "push" && *suiteName != "swarm" {
		fmt.Fprintf(os.Stderr, "bench: -suite %q: want push or swarm\n", *suiteName)
		os.Exit(2)
	}
	var suiteSystems []string
	if *suiteName == "swarm" {
		var err error
		if suiteSystems, err = parseSystems(*systems); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		if *rounds < 1 {
			fmt.Fprintln(os.Stderr, "bench: -rounds must be at least 1")
			os.Exit(2)
		}
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: needs root (network namespaces, containers)")
		os.Exit(1)
	}
	binDir := "" // a binary built here, removed at the end
	if *bin == "" {
		dir, err := os.MkdirTemp("", "gitorc-bench-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer os.RemoveAll(dir)
		binDir = dir
		*bin = filepath.Join(dir, "gitorc")
		if out, err := exec.Command("go", "build", "-o", *bin, "./cmd/gitorc").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: build gitorc: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	if *suiteName == "swarm" {
		code := runSwarmSuite(suiteOptions{bin: *bin, rounds: *rounds, systems: suiteSystems,
			poll: *poll, settle: *settle, timeout: *stepTimeout, keepLogs: *keepLogs, profileDir: *profileDir})
		if binDir != "" {
			_ = os.RemoveAll(binDir)
		}
		os.Exit(code)
	}
	var res result
	var failure string
	br := testing.Benchmark(func(b *testing.B) {
		res, failure = measure(b, *bin, *mode, *hosts, *replicas, *pushes)
	})
	if failure != "" {
		fmt.Fprintln(os.Stderr, "bench:", failure)
		os.Exit(1)
	}
	if len(res.running) == 0 {
		fmt.Fprintf(os.Stderr, "bench: nothing measured (%v)\n", br)
		os.Exit(1)
	}
	fmt.Printf("push-to-running with a webhook (%s): %d hosts, %d replicas of a cached image, %d pushes\n\n", *mode, *hosts, *replicas, len(res.running))
	fmt.Println("| measure | median | p90 | p99 | min | max |")
	fmt.Println("| --- | --- | --- | --- | --- | --- |")
	row("push → all replicas running", res.running)
	row("push → revision Synced", res.synced)
	row("machine CPU time, push → running", res.cpu)
	row("webhook answer (202)", res.hook)
	row("git commit + push", res.push)
}

type result struct {
	running, synced, hook, push []time.Duration
	cpu                         []time.Duration // the machine's CPU time from push to running
}

// measure runs the pushes; a non-empty string says why it stopped.
func measure(b *testing.B, bin, mode string, hosts, replicas, pushes int) (result, string) {
	if mode != "update" && mode != "replace" {
		return result{}, fmt.Sprintf("-mode %q: want update or replace", mode)
	}
	const secret = "bench-hook-secret"
	env := gitopsenv.Start(b, gitopsenv.Options{Hosts: hosts, Bin: bin, Interval: time.Hour, Secret: secret})
	ctx := context.Background()
	var res result
	// Push 0 warms up: every node pulls the image once.
	for i := 0; i <= pushes; i++ {
		name, version := "w", fmt.Sprintf("w%d", i)
		if mode == "replace" {
			name = version
		}
		start, cpu0 := time.Now(), machineCPU()
		commit, err := env.Repo.Commit("main", "bench "+version, map[string]string{"stacks/bench/compose.yaml": env.Stack(name, replicas, version)})
		if err != nil {
			return res, err.Error()
		}
		pushed := time.Now()
		code, msg, err := gitserver.Deliver(ctx, env.HookURL, []byte(secret), "main", commit)
		if err != nil || code != 202 {
			return res, fmt.Sprintf("webhook: %d %q %v", code, msg, err)
		}
		hooked := time.Now()
		var running, synced, cpu time.Duration
		deadline := time.Now().Add(2 * time.Minute)
		for running == 0 || synced == 0 {
			if time.Now().After(deadline) {
				st, _ := env.Gitorc("status")
				env.DumpLogs()
				return res, fmt.Sprintf("push %d: not running and synced after 2m\n%s", i, st)
			}
			if running == 0 {
				if n, err := runningOf(ctx, env, version); err == nil && n == replicas {
					running, cpu = time.Since(start), machineCPU()-cpu0
				}
			}
			if synced == 0 {
				if st, err := env.Sync(ctx); err == nil && st.Revision == commit && st.Phase == api.SyncSynced {
					synced = time.Since(start)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Let the previous revision's tasks stop before the next push, so
		// that no push pays for another's teardown.
		for !quiet(ctx, env, "bench_"+name, version) {
			if time.Now().After(deadline) {
				return res, fmt.Sprintf("push %d: the previous service's tasks did not stop", i)
			}
			time.Sleep(50 * time.Millisecond)
		}
		fmt.Fprintf(os.Stderr, "push %2d: running %6s  synced %6s\n", i, running.Round(time.Millisecond), synced.Round(time.Millisecond))
		if i == 0 {
			continue
		}
		res.running = append(res.running, running)
		res.synced = append(res.synced, synced)
		res.cpu = append(res.cpu, cpu)
		res.hook = append(res.hook, hooked.Sub(pushed))
		res.push = append(res.push, pushed.Sub(start))
	}
	if dir := os.Getenv("BENCH_KEEP_LOGS"); dir != "" {
		_ = exec.Command("cp", "-r", env.LogDir(), dir).Run()
	}
	return res, ""
}

// machineCPU is the CPU time every process on the machine has used (from
// /proc/stat; 0 where it cannot be read).
func machineCPU() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal …
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		if i < len(f) {
			n, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// version is the environment entry that tells the pushes' tasks apart.
func version(t controlapi.Task) string {
	for _, e := range t.Spec.Container.Env {
		if v, ok := strings.CutPrefix(e, "VERSION="); ok {
			return v
		}
	}
	return ""
}

// runningOf counts the running tasks of a push.
func runningOf(ctx context.Context, env *gitopsenv.Env, v string) (int, error) {
	tasks, err := env.Tasks(ctx)
	n := 0
	for _, t := range tasks {
		if version(t) == v && t.DesiredState == api.TaskRunning && t.Status.State == api.TaskRunning {
			n++
		}
	}
	return n, err
}

// quiet says whether the only service is the given one and every task of
// an earlier push has stopped.
func quiet(ctx context.Context, env *gitopsenv.Env, service, v string) bool {
	svcs, err := env.Services(ctx)
	if err != nil || len(svcs) != 1 || svcs[service].ID == "" {
		return false
	}
	tasks, err := env.Tasks(ctx)
	if err != nil {
		return false
	}
	for _, t := range tasks {
		if version(t) != v && !t.Status.State.Terminal() {
			return false
		}
	}
	return true
}

func row(what string, ds []time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) string {
		i := int(p*float64(len(s))+0.5) - 1
		i = max(0, min(i, len(s)-1))
		return s[i].Round(time.Millisecond).String()
	}
	fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", what, q(0.5), q(0.9), q(0.99), strings.TrimSpace(s[0].Round(time.Millisecond).String()),
		s[len(s)-1].Round(time.Millisecond).String())
}
