package gitopsenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/agent/containerd/imagetest"
	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/e2e/gitserver"
	"github.com/gitorc/gitorc/e2e/harness"
)

// Options shape a cluster.
type Options struct {
	Hosts    int           // 1 or more
	Bin      string        // the gitorc binary
	Interval time.Duration // poll interval of the source
	Secret   string        // the webhook secret
}

// Env is a running cluster and its Git server.
type Env struct {
	tb      testing.TB
	opts    Options
	Net     *harness.Network
	Reg     *imagetest.Registry
	Repo    *gitserver.Repo
	Git     *gitserver.Server
	HookURL string // http://h1:4280
	Socket  string // the first manager's control socket
	logs    string
	dirs    []string
	procs   []*harness.Process
	api     *client.Client
}

// Requirements returns why a cluster cannot run here, or "".
func Requirements() string {
	if why := harness.Requirements(); why != "" {
		return why
	}
	if why := gitserver.Requirements(); why != "" {
		return why
	}
	for _, p := range []string{imagetest.BusyboxPath, imagetest.RegistryPath, "/usr/bin/containerd", "/usr/sbin/runc"} {
		if _, err := os.Stat(p); err != nil {
			return "needs " + p + ": run scripts/install-deps.sh"
		}
	}
	return ""
}

// Start starts the cluster; it is torn down when tb ends. The repository
// holds one empty commit on main when the first manager starts.
func Start(tb testing.TB, opts Options) *Env {
	tb.Helper()
	if why := Requirements(); why != "" {
		tb.Skip("gitops e2e: " + why)
	}
	ctx := context.Background()
	e := &Env{tb: tb, opts: opts, Net: harness.NewNetwork(tb, opts.Hosts), logs: tb.TempDir()}
	tmp := tb.TempDir()
	reg, err := imagetest.StartBusyboxRegistry(ctx, filepath.Join(tmp, "registry"), e.Net.Gateway.String(),
		[]string{"sleep", "3600"}, 30*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(reg.Stop)
	e.Reg = reg
	if e.Repo, err = gitserver.NewRepo(filepath.Join(tmp, "git")); err != nil {
		tb.Fatal(err)
	}
	if _, err := e.Repo.Commit("main", "empty", map[string]string{"README": "stacks\n"}); err != nil {
		tb.Fatal(err)
	}
	if e.Git, err = gitserver.Serve(e.Repo, net.JoinHostPort(e.Net.Gateway.String(), "0")); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.Git.Close() })
	secretFile := filepath.Join(tmp, "hook.secret")
	if err := os.WriteFile(secretFile, []byte(opts.Secret), 0o600); err != nil {
		tb.Fatal(err)
	}
	for i := range e.Net.Hosts {
		e.dirs = append(e.dirs, filepath.Join(tmp, fmt.Sprintf("node%d", i+1)))
	}
	tb.Cleanup(e.teardown)
	h1 := e.Net.Host(1)
	manager := h1.Addr.String() + ":4270"
	hook := h1.Addr.String() + ":4280"
	e.HookURL = "http://" + hook
	p, err := h1.Start(e.logs, opts.Bin, "bootstrap", "--data-dir", e.dirs[0], "--listen", manager, "--insecure-registry", reg.Addr,
		"--repo", e.Git.URL, "--branch", "main", "--interval", opts.Interval.String(),
		"--webhook-listen", hook, "--webhook-secret-file", secretFile)
	if err != nil {
		tb.Fatal(err)
	}
	e.procs = append(e.procs, p)
	e.Socket = filepath.Join(e.dirs[0], "gitorc.sock")
	e.api = client.Unix(e.Socket).WithTimeout(30 * time.Second)
	var token string
	e.WaitFor("the manager to lead", 60*time.Second, func() bool {
		out, err := e.Gitorc("token", "worker")
		token = strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
		return err == nil && strings.HasPrefix(token, "GTRC-1-")
	})
	for i := 2; i <= opts.Hosts; i++ {
		p, err := e.Net.Host(i).Start(e.logs, opts.Bin, "join", "--token", token, "--data-dir", e.dirs[i-1], "--insecure-registry", reg.Addr, manager)
		if err != nil {
			tb.Fatal(err)
		}
		e.procs = append(e.procs, p)
	}
	e.WaitFor(fmt.Sprintf("%d ready nodes", opts.Hosts), 60*time.Second, func() bool {
		out, err := e.Gitorc("node", "ls", "-o", "json")
		return err == nil && strings.Count(out, `"state": "ready"`) == opts.Hosts
	})
	return e
}

// Gitorc runs the CLI against the first manager.
func (e *Env) Gitorc(args ...string) (string, error) {
	out, err := exec.Command(e.opts.Bin, append([]string{"--socket", e.Socket}, args...)...).CombinedOutput()
	return string(out), err
}

// WaitFor polls cond until it holds, or fails the test after timeout.
func (e *Env) WaitFor(what string, timeout time.Duration, cond func() bool) {
	e.tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			st, _ := e.Gitorc("status")
			svc, _ := e.Gitorc("service", "ls")
			e.DumpLogs()
			e.tb.Fatalf("timed out after %s waiting for %s\n%s\n%s", timeout, what, st, svc)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Services returns the cluster's services with their running counts, by
// name, straight from the control API.
func (e *Env) Services(ctx context.Context) (map[string]controlapi.Service, error) {
	list, err := e.api.Services(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]controlapi.Service{}
	for _, s := range list {
		out[s.Spec.Name] = s
	}
	return out, nil
}

// Tasks returns every task the store holds, history included.
func (e *Env) Tasks(ctx context.Context) ([]controlapi.Task, error) {
	return e.api.Tasks(ctx, client.TaskFilter{})
}

// Sync returns the sync state (what `gitorc status -o json` shows as
// "state"), without starting a CLI process.
func (e *Env) Sync(ctx context.Context) (api.SyncState, error) {
	rep, err := e.api.SyncStatus(ctx)
	return rep.State, err
}

// LogDir is where every node's log is.
func (e *Env) LogDir() string { return e.logs }

// DumpLogs logs the last lines of every node's log.
func (e *Env) DumpLogs() { harness.DumpLogs(e.tb, e.logs, 60) }

// teardown removes every stack through Git (a commit without them), stops
// the nodes, and clears what a killed node could leave: container shims
// and mounts under the data dirs.
func (e *Env) teardown() {
	if e.tb.Failed() {
		e.DumpLogs()
	}
	if _, err := e.Repo.Commit("main", "remove every stack", map[string]string{"stacks": ""}); err == nil {
		if _, err := e.Gitorc("sync", "--wait", "--timeout", "60s"); err == nil {
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				svcs, err := e.Services(context.Background())
				if err == nil && len(svcs) == 0 {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
	for i := len(e.procs) - 1; i >= 0; i-- {
		_ = e.procs[i].Stop(20 * time.Second)
	}
	harness.ClearNodeDirs(e.dirs)
}

// Stack is a stack file of one service: replicas of gitorc/busybox:1
// sleeping, with an environment variable that tells revisions apart.
// sleep, as a container's first process, ignores SIGTERM: a stop waits
// for the grace period, which is short here.
func (e *Env) Stack(service string, replicas int, version string) string {
	return fmt.Sprintf(`services:
  %s:
    image: %s/gitorc/busybox:1
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    environment:
      VERSION: %q
    deploy:
      replicas: %d
      update_config:
        parallelism: 0
        order: start-first
`, service, e.Reg.Addr, version, replicas)
}

// DataDir is host i's data dir (1-based).
func (e *Env) DataDir(i int) string { return e.dirs[i-1] }

// Exec runs a command in a running task's container, on whichever node
// runs it, and returns its output.
func (e *Env) Exec(ctx context.Context, t api.Task, args ...string) (string, error) {
	dir := ""
	for _, d := range e.dirs {
		b, err := os.ReadFile(filepath.Join(d, "node.json"))
		var st struct {
			ID string `json:"id"`
		}
		if err == nil && json.Unmarshal(b, &st) == nil && st.ID == t.NodeID {
			dir = d
		}
	}
	if dir == "" {
		return "", fmt.Errorf("no host runs node %s", t.NodeID)
	}
	sock := filepath.Join(dir, "executor", "containerd", "containerd.sock")
	id := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"--address", sock, "--namespace", "gitorc", "task", "exec",
		"--exec-id", id, t.ID}, args...)...).CombinedOutput()
	return string(out), err
}
