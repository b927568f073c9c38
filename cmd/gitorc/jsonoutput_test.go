package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitorc/gitorc/cluster/node"
	"github.com/gitorc/gitorc/cluster/node/nodetest"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/gitorc/gitorc/secrets"
)

// The tests that run commands with -o json and check what they print.
const (
	byFakeAPI = "TestJSONOutputOnFakeAPI"
	byLocal   = "TestJSONOutputLocal"
	byNode    = "TestJSONOutputOnNode"
)

// jsonTests names, for every runnable command (its path under gitorc),
// the test of this file that runs it with -o json and checks its answer,
// or, for the few no test here can run, where it is run and why not here.
// Those tests check that they run exactly the commands named for them;
// TestEveryCommandPrintsJSON checks that every command is named here.
var jsonTests = map[string]string{
	"node":             byFakeAPI, // node without a subcommand is node ls
	"node ls":          byFakeAPI,
	"node inspect":     byFakeAPI,
	"node update":      byFakeAPI,
	"node promote":     byFakeAPI,
	"node demote":      byFakeAPI,
	"node rm":          byFakeAPI,
	"service ls":       byFakeAPI,
	"service inspect":  byFakeAPI,
	"service scale":    byFakeAPI,
	"service rollback": byFakeAPI,
	"service update":   byFakeAPI,
	"ps":               byFakeAPI,
	"stack ps":         byFakeAPI,
	"stack services":   byFakeAPI,
	"network ls":       byFakeAPI,
	"network inspect":  byFakeAPI,
	"secret ls":        byFakeAPI,
	"config ls":        byFakeAPI,
	"secret create":    byFakeAPI,
	"secret inspect":   byFakeAPI,
	"secret rm":        byFakeAPI,
	"config create":    byFakeAPI,
	"config inspect":   byFakeAPI,
	"config rm":        byFakeAPI,
	"network create":   byFakeAPI,
	"network rm":       byFakeAPI,
	"registry login":   byFakeAPI,
	"registry ls":      byFakeAPI,
	"registry logout":  byFakeAPI,

	"version":      byLocal,
	"validate":     byLocal,
	"stack config": byLocal,
	"seal":         byLocal,

	"bootstrap":    byNode,
	"daemon":       byNode,
	"join":         byNode,
	"leave":        byNode,
	"token":        byNode,
	"suspend":      byNode,
	"resume":       byNode,
	"stack deploy": byNode,
	"stack rm":     byNode,
	"status":       byNode,
	"history":      byNode,
	"source set":   byNode,
	"sync":         byNode,
	"ca":           byNode,
	"ca inspect":   byNode,
	"ca rotate":    byNode,

	"admin-cert issue":  byRemote,
	"admin-cert ls":     byRemote,
	"admin-cert revoke": byRemote,
	"context create":    byRemote,
	"context ls":        byRemote,
	"context use":       byRemote,
	"context rm":        byRemote,

	// Not run here: each needs what these tests lack.
	"events":         "a stream, one JSON object a line: TestEventsCommand runs events -o json",
	"diff":           "a Git server with commits: TestDiffOnDaemon runs diff -o json",
	"rollback":       "a sync history of a Git source: TestSelfHealHistoryRollbackOnDaemon runs rollback",
	"image load":     "containerd, as root: the executor's tests import archives",
	"unlock":         "an autolocked manager restarted: TestAutolock runs unlock, unlock-key and cluster update -o json",
	"unlock-key":     "an autolocked cluster: TestAutolock runs it with -o json",
	"cluster update": "an autolocked cluster: TestAutolock runs it with -o json",
	"logs":           "tasks on nodes with containerd: cluster/logs, cluster/dispatcher's TestTaskLogsOverSession and cmd/gitorc's TestLogsLineFormat cover it; no test here runs logs -o json yet",
}

// noOutputFlag lists the runnable commands that print nothing, or cannot
// print JSON, with the reason. Every command prints JSON today; a
// command added here must say why it cannot.
var noOutputFlag = map[string]string{}

// shortOutputTaken lists the commands whose -o is not the output format,
// with what it is: --output is their format.
var shortOutputTaken = map[string]string{
	"seal": "-o is the sealed file, as age's -o",
}

// cobraCommands are cobra's own commands, added when the tree executes.
var cobraCommands = []string{"help", "completion"}

// commandPath is a command's path under gitorc: "node ls".
func commandPath(c *cobra.Command) string {
	return strings.TrimPrefix(strings.TrimPrefix(c.CommandPath(), "gitorc"), " ")
}

// runnableCommands walks gitorc's command tree and returns its runnable
// commands by path.
func runnableCommands() map[string]*cobra.Command {
	out := map[string]*cobra.Command{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if slices.Contains(cobraCommands, c.Name()) && c.Parent() != nil && !c.Parent().HasParent() {
			return
		}
		if c.Runnable() {
			out[commandPath(c)] = c
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
	return out
}

// Every runnable command takes -o/--output json (or says why not), and a
// test of this file runs it with -o json (or jsonTests says why not): a
// command added without either fails here.
func TestEveryCommandPrintsJSON(t *testing.T) {
	cmds := runnableCommands()
	if len(cmds) < 30 {
		t.Fatalf("only %d runnable commands found: the walk is broken", len(cmds))
	}
	for path, c := range cmds {
		if why, ok := noOutputFlag[path]; ok {
			if c.Flags().Lookup("output") != nil {
				t.Errorf("gitorc %s has --output, but noOutputFlag says it cannot (%s): drop it from the list", path, why)
			}
			continue
		}
		f := c.Flags().Lookup("output")
		switch {
		case f == nil:
			t.Errorf("gitorc %s has no -o/--output flag: every command that prints takes -o json (addOutputFlag)", path)
			continue
		case f.Value.Type() != "string":
			t.Errorf("gitorc %s: --output is a %s flag, want a string", path, f.Value.Type())
		case !strings.Contains(f.Usage, "json"):
			t.Errorf("gitorc %s: --output %q does not offer json", path, f.Usage)
		}
		if why, ok := shortOutputTaken[path]; ok {
			if f.Shorthand != "" {
				t.Errorf("gitorc %s: --output has -%s, but shortOutputTaken says %s", path, f.Shorthand, why)
			}
		} else if f.Shorthand != "o" {
			t.Errorf("gitorc %s: --output has no -o", path)
		}
		if _, ok := jsonTests[path]; !ok {
			t.Errorf("gitorc %s: no test runs it with -o json: add it to a test of jsonoutput_test.go and to jsonTests", path)
		}
	}
	for _, list := range []map[string]string{jsonTests, noOutputFlag, shortOutputTaken} {
		for path := range list {
			if cmds[path] == nil {
				t.Errorf("gitorc %s is listed in jsonoutput_test.go but is no runnable command", path)
			}
		}
	}
}

// jsonRuns records the commands a test ran with -o json, to compare
// them with the test's share of jsonTests.
type jsonRuns struct {
	test string
	ran  map[string]bool
}

func newJSONRuns(t *testing.T, test string) *jsonRuns {
	r := &jsonRuns{test: test, ran: map[string]bool{}}
	t.Cleanup(func() {
		if t.Failed() {
			return // a test cut short ran less
		}
		for path, by := range jsonTests {
			if by == test && !r.ran[path] {
				t.Errorf("jsonTests says %s runs gitorc %s -o json; it did not", test, path)
			}
		}
		for path := range r.ran {
			if jsonTests[path] != test {
				t.Errorf("%s runs gitorc %s -o json, but jsonTests names %q for it", test, path, jsonTests[path])
			}
		}
	})
	return r
}

// args returns args with the output format json, and records the command
// they run: -o json, or --output json where -o is something else.
func (r *jsonRuns) args(t *testing.T, path string, args ...string) []string {
	t.Helper()
	c, _, err := newRootCmd().Find(args)
	if err != nil || commandPath(c) != path {
		t.Fatalf("gitorc %s runs %q, not gitorc %s (%v)", strings.Join(args, " "), commandPath(c), path, err)
	}
	r.ran[path] = true
	if _, ok := shortOutputTaken[path]; ok {
		return append(args, "--output", "json")
	}
	return append(args, "-o", "json")
}

// run runs a command with -o json, which must succeed and print one JSON
// document with the keys.
func (r *jsonRuns) run(t *testing.T, path string, shape jsonShape, args ...string) any {
	t.Helper()
	args = r.args(t, path, args...)
	out, errOut, code := run(t, args...)
	if code != 0 {
		t.Fatalf("gitorc %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return shape.check(t, "gitorc "+strings.Join(args, " "), out)
}

// jsonShape is what a command prints with -o json: an object with keys,
// or an array (of objects with keys), empty only when empty says so.
type jsonShape struct {
	array bool
	empty bool
	keys  []string
}

func object(keys ...string) jsonShape { return jsonShape{keys: keys} }
func array(keys ...string) jsonShape  { return jsonShape{array: true, keys: keys} }

// check fails unless out is one JSON document of the shape, and returns
// it decoded.
func (s jsonShape) check(t *testing.T, what, out string) any {
	t.Helper()
	if !json.Valid([]byte(out)) {
		t.Errorf("%s: stdout is not one JSON document:\n%s", what, out)
		return nil
	}
	var v any
	_ = json.Unmarshal([]byte(out), &v)
	var objs []any
	if s.array {
		a, ok := v.([]any)
		if !ok {
			t.Errorf("%s: want a JSON array, got\n%s", what, out)
			return v
		}
		if len(a) == 0 && !s.empty {
			t.Errorf("%s: empty array", what)
		}
		objs = a
	} else {
		objs = []any{v}
	}
	for _, o := range objs {
		m, ok := o.(map[string]any)
		if !ok {
			t.Errorf("%s: want JSON objects, got\n%s", what, out)
			return v
		}
		for _, k := range s.keys {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: no %q in\n%s", what, k, out)
			}
		}
	}
	return v
}

// field reads a top-level field of a decoded object.
func field(v any, key string) any {
	m, _ := v.(map[string]any)
	return m[key]
}

var (
	nodeKeys    = []string{"id", "name", "spec", "status", "tasks"}
	serviceKeys = []string{"id", "spec", "running", "serving", "desired"}
	taskKeys    = []string{"id", "service_name", "desired_state", "status"}
	networkKeys = []string{"id", "spec", "services", "tasks"}
)

// The commands the fake control API serves print JSON with -o json.
func TestJSONOutputOnFakeAPI(t *testing.T) {
	serveAPI(t)
	r := newJSONRuns(t, byFakeAPI)
	// Registry logins, from a docker config.json: their passwords are
	// never printed.
	dockerConfig := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(dockerConfig, []byte(`{"auths": {"ghcr.example.com": {"username": "bot", "password": "pw-secret"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path  string
		args  []string
		shape jsonShape
	}{
		{"node", []string{"node"}, array(nodeKeys...)},
		{"node ls", []string{"node", "ls"}, array(nodeKeys...)},
		{"node inspect", []string{"node", "inspect", "boss", "alpha"}, array(nodeKeys...)},
		{"node update", []string{"node", "update", "alpha", "--label-add", "zone=a"}, object(nodeKeys...)},
		{"node promote", []string{"node", "promote", "alpha"}, array(nodeKeys...)},
		{"node demote", []string{"node", "demote", "alpha"}, array(nodeKeys...)},
		{"node rm", []string{"node", "rm", "beta"}, array(nodeKeys...)},
		{"service ls", []string{"service", "ls"}, array(serviceKeys...)},
		{"service inspect", []string{"service", "inspect", "shop_web"}, array(serviceKeys...)},
		{"service scale", []string{"service", "scale", "solo=2", "shop_web=4"}, array(serviceKeys...)},
		{"service rollback", []string{"service", "rollback", "shop_web"}, object(serviceKeys...)},
		{"service update", []string{"service", "update", "solo", "--force"}, object(serviceKeys...)},
		{"ps", []string{"ps"}, array(taskKeys...)},
		{"ps", []string{"ps", "shop_web"}, array(taskKeys...)},
		{"stack ps", []string{"stack", "ps", "shop"}, array(taskKeys...)},
		{"stack services", []string{"stack", "services", "shop"}, array(serviceKeys...)},
		{"network ls", []string{"network", "ls"}, array(networkKeys...)},
		{"network inspect", []string{"network", "inspect", "shop_default"}, array(networkKeys...)},
		// The seed has no secrets nor configs.
		{"secret ls", []string{"secret", "ls"}, jsonShape{array: true, empty: true}},
		{"config ls", []string{"config", "ls"}, jsonShape{array: true, empty: true}},
		{"secret create", []string{"secret", "create", "ext_token", dockerConfig}, object("id", "name", "data_hash", "external")},
		{"secret inspect", []string{"secret", "inspect", "ext_token"}, array("id", "name", "data_hash", "external")},
		{"secret rm", []string{"secret", "rm", "ext_token"}, object("removed")},
		{"config create", []string{"config", "create", "ext_motd", dockerConfig}, object("id", "name", "data_hash", "external")},
		{"config inspect", []string{"config", "inspect", "ext_motd"}, array("id", "name", "data_hash", "external")},
		{"config rm", []string{"config", "rm", "ext_motd"}, object("removed")},
		{"network create", []string{"network", "create", "ext_net"}, object("id", "spec")},
		{"network rm", []string{"network", "rm", "ext_net"}, object("removed")},
		{"registry login", []string{"registry", "login", "--docker-config", dockerConfig}, array("host", "username")},
		{"registry ls", []string{"registry", "ls"}, array("host", "username")},
		{"registry logout", []string{"registry", "logout", "ghcr.example.com"}, object("host")},
	} {
		v := r.run(t, c.path, c.shape, c.args...)
		if b, _ := json.Marshal(v); strings.Contains(string(b), "pw-secret") {
			t.Errorf("gitorc %s -o json prints a registry password: %s", strings.Join(c.args, " "), b)
		}
	}

	// Several services scaled are one array, in order; several nodes too.
	out := mustRun(t, "service", "scale", "solo=3", "shop_web=5", "-o", "json")
	var scaled []struct {
		Spec struct {
			Name     string `json:"name"`
			Replicas int    `json:"replicas"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(out), &scaled); err != nil || len(scaled) != 2 ||
		scaled[0].Spec.Name != "solo" || scaled[0].Spec.Replicas != 3 || scaled[1].Spec.Name != "shop_web" || scaled[1].Spec.Replicas != 5 {
		t.Errorf("service scale -o json: %v\n%s", err, out)
	}
	// A failure on a later argument prints those done before, and fails.
	out, errOut, code := run(t, "node", "promote", "alpha", "zeta", "-o", "json")
	if code != 1 || !strings.Contains(errOut, `node "zeta" not found`) {
		t.Errorf("node promote alpha zeta: exit %d: %s", code, errOut)
	}
	if v := array(nodeKeys...).check(t, "node promote alpha zeta", out); v != nil {
		if a := v.([]any); len(a) != 1 || field(a[0], "name") != "alpha" {
			t.Errorf("node promote alpha zeta printed\n%s", out)
		}
	}
	// ...and nothing when the first fails.
	if out, _, code := run(t, "node", "rm", "zeta", "-o", "json"); code != 1 || out != "" {
		t.Errorf("node rm zeta -o json: exit %d, stdout %q", code, out)
	}
	mustFail(t, "--output yaml is not one of [text json]", "node", "promote", "alpha", "-o", "yaml")
}

// The commands that need no daemon print JSON with -o json; seal prints
// neither the plaintext nor the sealed content.
func TestJSONOutputLocal(t *testing.T) {
	r := newJSONRuns(t, byLocal)
	v := r.run(t, "version", object("version", "os", "arch", "go"), "version")
	if field(v, "version") != version || field(v, "go") != runtime.Version() {
		t.Errorf("version -o json: %v", v)
	}
	r.run(t, "validate", array("path", "valid", "stacks"), "validate", "../../examples")
	r.run(t, "stack config", array("stack", "services"), "stack", "config", "--name", "myapp", "../../compose/testdata/seed-stacks/tutorial-myapp.yml")

	id, err := secrets.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	plain, sealed := filepath.Join(dir, "pw.txt"), filepath.Join(dir, "pw.age")
	if err := os.WriteFile(plain, []byte("hunter2"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := r.args(t, "seal", "seal", plain, "--recipient", id.Recipient(), "-o", sealed)
	out, errOut, code := run(t, args...)
	if code != 0 {
		t.Fatalf("seal: exit %d: %s", code, errOut)
	}
	v = object("output", "recipients").check(t, "seal --output json", out)
	if field(v, "output") != sealed || !slices.Equal(field(v, "recipients").([]any), []any{id.Recipient()}) {
		t.Errorf("seal --output json: %s", out)
	}
	b, err := os.ReadFile(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out+errOut, "hunter2") || strings.Contains(out, strings.TrimSpace(string(b))) || errOut != "" {
		t.Errorf("seal --output json printed more than its report:\nstdout %s\nstderr %s", out, errOut)
	}
	if got, err := id.Open(b); err != nil || string(got.Reveal()) != "hunter2" {
		t.Errorf("open the sealed file: %v", err)
	}
	// The sealed content would share standard output with the report.
	mustFail(t, "--output json needs -o FILE", "seal", plain, "--recipient", id.Recipient(), "--output", "json")
	mustFail(t, "the sealed file is -o/--out", "seal", plain, "--recipient", id.Recipient(), "--output", sealed)
}

// lockedBuffer collects a command's output while a test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// cliRun is a command running in the background, as bootstrap does.
type cliRun struct {
	args        []string
	out, errOut lockedBuffer
	done        chan error
	cancel      context.CancelFunc
	err         error
	ended       bool
}

// startCLI runs gitorc with args in the background until it returns, or
// the test ends.
func startCLI(t *testing.T, args ...string) *cliRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &cliRun{args: args, done: make(chan error, 1), cancel: cancel}
	cmd := newRootCmd()
	cmd.SetOut(&r.out)
	cmd.SetErr(&r.errOut)
	cmd.SetArgs(args)
	go func() { r.done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			t.Logf("gitorc %s: stderr:\n%s", strings.Join(args, " "), r.errOut.String())
		}
	})
	return r
}

// wait waits for the command to return, and returns its error.
func (r *cliRun) wait(t *testing.T) error {
	t.Helper()
	if r.ended {
		return r.err
	}
	select {
	case r.err = <-r.done:
		r.ended = true
	case <-time.After(2 * time.Minute):
		buf := make([]byte, 1<<22)
		t.Fatalf("gitorc %s did not end within 2 minutes; goroutines:\n%s", strings.Join(r.args, " "), buf[:runtime.Stack(buf, true)])
	}
	return r.err
}

// stop ends the command as SIGINT does, and returns its error.
func (r *cliRun) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	return r.wait(t)
}

// report waits for the node's -o json report on stdout.
func (r *cliRun) report(t *testing.T) any {
	t.Helper()
	if err := storetest.WaitFor(func() bool { return json.Valid([]byte(r.out.String())) }, time.Minute); err != nil {
		select {
		case err := <-r.done:
			r.err, r.ended = err, true
			t.Fatalf("gitorc %s ended (%v) without its report; stdout:\n%s", strings.Join(r.args, " "), err, r.out.String())
		default:
		}
		t.Fatalf("gitorc %s printed no report; stdout:\n%s", strings.Join(r.args, " "), r.out.String())
	}
	return object("node", "role", "worker", "data_dir", "socket", "listen", "advertise", "raft_listen", "raft_advertise", "managers").
		check(t, "gitorc "+strings.Join(r.args, " "), r.out.String())
}

// A manager that runs no tasks, run by the CLI itself: bootstrap, daemon
// and join print their node once it is up and keep running; the commands
// the node serves print JSON; leave prints what it removed, and ends the
// node's command.
func TestJSONOutputOnNode(t *testing.T) {
	r := newJSONRuns(t, byNode)
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "m1")
	listen := nodetest.FreeAddr(t)
	boot := startCLI(t, r.args(t, "bootstrap", "bootstrap", "--data-dir", dir, "--listen", listen, "--raft-listen", nodetest.FreeAddr(t), "--no-worker")...)
	rep := boot.report(t)
	id, _ := field(rep, "node").(string)
	if id == "" || field(rep, "role") != "manager" || field(rep, "worker") != false || field(rep, "data_dir") != dir ||
		field(rep, "socket") != node.Socket(dir) || field(rep, "listen") != listen || field(rep, "advertise") != listen ||
		!strings.HasPrefix(field(rep, "recipient").(string), "age1") {
		t.Errorf("bootstrap report: %s", boot.out.String())
	}
	socket := node.Socket(dir)
	tokenOf := func() any {
		var v any
		if err := storetest.WaitFor(func() bool {
			out, _, code := run(t, "token", "manager", "--socket", socket, "-o", "json")
			return code == 0 && json.Unmarshal([]byte(out), &v) == nil
		}, 30*time.Second); err != nil {
			t.Fatal("the manager gives no token")
		}
		return v
	}
	tokenOf() // the node leads and holds the cluster's keys

	tokenShape := object("role", "token", "manager", "rotated")
	v := r.run(t, "token", tokenShape, "token", "worker", "--socket", socket)
	if field(v, "role") != "worker" || !strings.HasPrefix(field(v, "token").(string), "GTRC-") || field(v, "manager") != listen || field(v, "rotated") != false {
		t.Errorf("token worker -o json: %v", v)
	}
	v = r.run(t, "token", tokenShape, "token", "manager", "--rotate", "--socket", socket)
	if field(v, "role") != "manager" || field(v, "rotated") != true {
		t.Errorf("token manager --rotate -o json: %v", v)
	}

	if v := r.run(t, "suspend", object("suspended"), "suspend", "--socket", socket); field(v, "suspended") != true {
		t.Errorf("suspend -o json: %v", v)
	}
	if v := r.run(t, "resume", object("suspended"), "resume", "--socket", socket); field(v, "suspended") != false {
		t.Errorf("resume -o json: %v", v)
	}

	stackFile := filepath.Join(tmp, "web.yaml")
	if err := os.WriteFile(stackFile, []byte(zeroReplicaStack("busybox:1")["app/compose.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	stackShape := object("stack", "steps")
	v = r.run(t, "stack deploy", stackShape, "stack", "deploy", "-c", stackFile, "--socket", socket, "web")
	if field(v, "stack") != "web" || !hasStep(v, "service", "web_web", "create") || field(v, "problems") != nil {
		t.Errorf("stack deploy -o json: %v", v)
	}
	// A plan with problems is refused: printed with them, and exit 1.
	clash := filepath.Join(tmp, "clash.yaml")
	if err := os.WriteFile(clash, []byte("services:\n  a:\n    image: busybox:1\n    ports: [\"8080:80\"]\n  b:\n    image: busybox:1\n    ports: [\"8080:80\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "stack", "deploy", "-c", clash, "--socket", socket, "-o", "json", "clash")
	if v := object("stack", "steps", "problems").check(t, "stack deploy (refused)", out); code != 1 || errOut == "" || v == nil ||
		len(field(v, "problems").([]any)) == 0 {
		t.Errorf("stack deploy of a plan with problems: exit %d, stderr %q\n%s", code, errOut, out)
	}
	// The allocator may update the new service while stack rm plans:
	// the commit runs again on what is there then, and succeeds.
	args := r.args(t, "stack rm", "stack", "rm", "--socket", socket, "web")
	if out, errOut, code = run(t, args...); code != 0 {
		t.Fatalf("gitorc %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	v = stackShape.check(t, "stack rm", out)
	if field(v, "stack") != "web" || !hasStep(v, "service", "web_web", "delete") {
		t.Errorf("stack rm -o json: %v", v)
	}

	r.run(t, "status", object("state", "webhook"), "status", "--socket", socket)
	r.run(t, "history", jsonShape{array: true, empty: true}, "history", "--socket", socket)
	v = r.run(t, "source set", object("source", "webhook_secret_set"), "source", "set", "--repo", filepath.Join(tmp, "no-repo"), "--socket", socket)
	if field(field(v, "source"), "url") != filepath.Join(tmp, "no-repo") {
		t.Errorf("source set -o json: %v", v)
	}
	if v := r.run(t, "sync", object("id", "trigger", "at"), "sync", "--socket", socket); field(v, "trigger") != "manual" {
		t.Errorf("sync -o json: %v", v)
	}

	// The root CA, rotated: a one-node cluster is done once its manager
	// shows a certificate of the new root; the join below is admitted by
	// a token pinning it (TestCARotate_Root rotates a cluster of three).
	caShape := object("root", "root_not_after")
	root0 := field(r.run(t, "ca", caShape, "ca", "--socket", socket), "root")
	v = r.run(t, "ca rotate", object("root", "root_not_after", "rotated_at"), "ca", "rotate", "--socket", socket)
	if root1 := field(v, "root"); root1 == root0 || field(v, "rotation") != nil {
		t.Errorf("ca rotate -o json: %v, the root was %v", v, root0)
	}
	if v2 := r.run(t, "ca inspect", caShape, "ca", "inspect", "--socket", socket); field(v2, "root") != field(v, "root") {
		t.Errorf("ca inspect -o json after the rotation: %v, want root %v", v2, field(v, "root"))
	}

	// Restarted, the node reports itself again.
	if err := boot.stop(t); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	boot = startCLI(t, r.args(t, "daemon", "daemon", "--data-dir", dir)...)
	if rep := boot.report(t); field(rep, "node") != id || field(rep, "role") != "manager" {
		t.Errorf("daemon report: %s", boot.out.String())
	}
	token := field(tokenOf(), "token").(string)

	// A manager joins, reports itself, and leaves.
	dir2 := filepath.Join(tmp, "m2")
	joined := startCLI(t, r.args(t, "join", "join", "--token", token, "--data-dir", dir2, "--listen", nodetest.FreeAddr(t), "--raft-listen", nodetest.FreeAddr(t), "--no-worker", listen)...)
	rep2 := joined.report(t)
	id2, _ := field(rep2, "node").(string)
	if id2 == "" || id2 == id || field(rep2, "role") != "manager" || field(rep2, "data_dir") != dir2 ||
		!slices.Contains(field(rep2, "managers").([]any), any(listen)) {
		t.Errorf("join report: %s", joined.out.String())
	}
	leaveShape := object("node", "role", "data_dir", "containers_removed", "network_plane_removed", "removes")
	for _, n := range []struct {
		run     *cliRun
		id, dir string
	}{{joined, id2, dir2}, {boot, id, dir}} {
		v := r.run(t, "leave", leaveShape, "leave", "--force", "--socket", node.Socket(n.dir))
		removes, _ := field(v, "removes").([]any)
		if field(v, "node") != n.id || field(v, "role") != "manager" || field(v, "data_dir") != n.dir ||
			!slices.Contains(removes, any(filepath.Join(n.dir, "node.json"))) || !slices.Contains(removes, any(filepath.Join(n.dir, "raft"))) {
			t.Errorf("leave -o json: %v", v)
		}
		if err := n.run.wait(t); err != nil {
			t.Errorf("the node's command after leave: %v", err)
		}
		if _, err := os.Stat(filepath.Join(n.dir, "node.json")); !os.IsNotExist(err) {
			t.Errorf("%s is still there after leave: %v", filepath.Join(n.dir, "node.json"), err)
		}
	}
}

// hasStep reports whether a printed plan has the step.
func hasStep(plan any, kind, name, action string) bool {
	steps, _ := field(plan, "steps").([]any)
	for _, s := range steps {
		if field(s, "kind") == kind && field(s, "name") == name && field(s, "action") == action {
			return true
		}
	}
	return false
}
