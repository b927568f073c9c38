// Command bench measures gitorc's push-to-running latency with webhooks
// on a cluster of network-namespace hosts (e2e/gitopsenv): each push
// replaces the stack's service by a new one of -replicas replicas of a
// cached image, is announced by a signed GitHub webhook, and is timed
// from just before git commit+push until every replica of the new
// service runs (and, separately, until the revision is Synced). It prints
// a table. Run as root:
//
//	go run ./e2e/bench -hosts 3 -replicas 10 -pushes 20
//
// BENCH_KEEP_LOGS=DIR copies the nodes' logs there before teardown (the
// manager's log times each delivery, fetch and apply).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/e2e/gitopsenv"
	"github.com/gitorc/gitorc/e2e/gitserver"
)

func main() {
	testing.Init()
	hosts := flag.Int("hosts", 3, "hosts in the cluster (the first is the manager)")
	replicas := flag.Int("replicas", 10, "replicas of each pushed service")
	pushes := flag.Int("pushes", 20, "measured pushes")
	bin := flag.String("bin", "", "the gitorc binary (default: built from ./cmd/gitorc)")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: needs root (network namespaces, containers)")
		os.Exit(1)
	}
	if *bin == "" {
		dir, err := os.MkdirTemp("", "gitorc-bench-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer os.RemoveAll(dir)
		*bin = filepath.Join(dir, "gitorc")
		if out, err := exec.Command("go", "build", "-o", *bin, "./cmd/gitorc").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: build gitorc: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	var res result
	var failure string
	br := testing.Benchmark(func(b *testing.B) {
		res, failure = measure(b, *bin, *hosts, *replicas, *pushes)
	})
	if failure != "" {
		fmt.Fprintln(os.Stderr, "bench:", failure)
		os.Exit(1)
	}
	if len(res.running) == 0 {
		fmt.Fprintf(os.Stderr, "bench: nothing measured (%v)\n", br)
		os.Exit(1)
	}
	fmt.Printf("push-to-running with a webhook: %d hosts, %d replicas of a cached image, %d pushes\n\n", *hosts, *replicas, len(res.running))
	fmt.Println("| measure | median | p90 | p99 | min | max |")
	fmt.Println("| --- | --- | --- | --- | --- | --- |")
	row("push → all replicas running", res.running)
	row("push → revision Synced", res.synced)
	row("webhook answer (202)", res.hook)
	row("git commit + push", res.push)
}

type result struct {
	running, synced, hook, push []time.Duration
}

// measure runs the pushes; a non-empty string says why it stopped.
func measure(b *testing.B, bin string, hosts, replicas, pushes int) (result, string) {
	const secret = "bench-hook-secret"
	env := gitopsenv.Start(b, gitopsenv.Options{Hosts: hosts, Bin: bin, Interval: time.Hour, Secret: secret})
	ctx := context.Background()
	var res result
	// Push 0 warms up: every node pulls the image once.
	for i := 0; i <= pushes; i++ {
		name := fmt.Sprintf("w%d", i)
		start := time.Now()
		commit, err := env.Repo.Commit("main", "bench "+name, map[string]string{"stacks/bench/compose.yaml": env.Stack(name, replicas, name)})
		if err != nil {
			return res, err.Error()
		}
		pushed := time.Now()
		code, msg, err := gitserver.Deliver(ctx, env.HookURL, []byte(secret), "main", commit)
		if err != nil || code != 202 {
			return res, fmt.Sprintf("webhook: %d %q %v", code, msg, err)
		}
		hooked := time.Now()
		var running, synced time.Duration
		deadline := time.Now().Add(2 * time.Minute)
		for running == 0 || synced == 0 {
			if time.Now().After(deadline) {
				st, _ := env.Gitorc("status")
				env.DumpLogs()
				return res, fmt.Sprintf("push %d: not running and synced after 2m\n%s", i, st)
			}
			svcs, err := env.Services(ctx)
			if err == nil && running == 0 && svcs["bench_"+name].Running == uint64(replicas) {
				running = time.Since(start)
			}
			if synced == 0 && isSynced(env, commit) {
				synced = time.Since(start)
			}
			time.Sleep(10 * time.Millisecond)
		}
		// The previous service is pruned with this revision: let its tasks
		// stop before the next push, so pushes do not overlap.
		for {
			svcs, err := env.Services(ctx)
			if err == nil && len(svcs) == 1 {
				break
			}
			if time.Now().After(deadline) {
				return res, fmt.Sprintf("push %d: the previous service was not pruned", i)
			}
			time.Sleep(50 * time.Millisecond)
		}
		fmt.Fprintf(os.Stderr, "push %2d: running %6s  synced %6s\n", i, running.Round(time.Millisecond), synced.Round(time.Millisecond))
		if i == 0 {
			continue
		}
		res.running = append(res.running, running)
		res.synced = append(res.synced, synced)
		res.hook = append(res.hook, hooked.Sub(pushed))
		res.push = append(res.push, pushed.Sub(start))
	}
	if dir := os.Getenv("BENCH_KEEP_LOGS"); dir != "" {
		_ = exec.Command("cp", "-r", env.LogDir(), dir).Run()
	}
	return res, ""
}

func isSynced(env *gitopsenv.Env, commit string) bool {
	out, err := env.Gitorc("status", "-o", "json")
	if err != nil {
		return false
	}
	var st struct {
		State struct {
			Phase    string `json:"phase"`
			Revision string `json:"revision"`
		} `json:"state"`
	}
	return json.Unmarshal([]byte(out), &st) == nil && st.State.Revision == commit && st.State.Phase == "synced"
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
