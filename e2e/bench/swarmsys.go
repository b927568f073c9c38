package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Debian's docker.io: the Swarm side runs only where it is installed.
const (
	dockerCLI = "/usr/bin/docker"
	dockerd   = "/usr/sbin/dockerd"
	// engineAPI is the Engine API version of docker.io 20.10.
	engineAPI = "v1.41"
	// systemContainerd is where dockerd looks for a containerd before it
	// starts its own.
	systemContainerd = "/run/containerd/containerd.sock"
)

// swarmRequirements says why the Swarm side cannot run here, or "".
func swarmRequirements() string {
	for _, p := range []string{dockerCLI, dockerd} {
		if _, err := os.Stat(p); err != nil {
			return "needs " + p + " (Debian's docker.io: apt-get install docker.io)"
		}
	}
	if _, err := os.Stat(systemContainerd); err == nil {
		return "a containerd listens at " + systemContainerd + ": dockerd would use it instead of a containerd of its own"
	}
	if pids := processes(func(c string) bool { return strings.HasPrefix(c, dockerd+" ") || c == dockerd }); len(pids) > 0 {
		return fmt.Sprintf("a dockerd runs already (pid %v): two would share docker0 and the iptables chains", pids)
	}
	return ""
}

// swarmSystem is an isolated dockerd (its own data root, exec root,
// socket and pidfile under a temporary directory, its own containerd)
// running a single-node Swarm, driven by the docker CLI and polled over
// the Engine API with the standard library.
type swarmSystem struct {
	dir      string
	socket   string
	execRoot string
	cmd      *exec.Cmd
	done     chan struct{}
	client   *http.Client
	log      io.Writer
	before   hostState
	refs     map[string]string
}

var _ system = (*swarmSystem)(nil)

// hostState is what dockerd may change on the host, taken before it starts.
type hostState struct {
	ipForward string
	rules     map[string][]string // iptables table → rules (-A …) and chains (-N …)
	links     []string
	nftTables []string
	files     map[string]bool // dockerdFiles: which existed
}

// dockerdFiles are paths docker.io 20.10 writes whatever its roots: its
// trust key and its plugin socket directory (removed after it only if it
// made them, and the directories only when empty).
var dockerdFiles = []string{"/etc/docker/key.json", "/run/docker/plugins", "/run/docker"}

var iptablesTables = []string{"filter", "nat", "mangle", "raw"}

func takeHostState() hostState {
	st := hostState{rules: map[string][]string{}}
	b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	st.ipForward = strings.TrimSpace(string(b))
	for _, t := range iptablesTables {
		st.rules[t] = iptablesLines(t)
	}
	st.links = linkNames()
	st.nftTables = nftTables()
	st.files = map[string]bool{}
	for _, f := range dockerdFiles {
		_, err := os.Lstat(f)
		st.files[f] = err == nil
	}
	return st
}

func iptablesLines(table string) []string {
	out, err := exec.Command("iptables", "-w", "-t", table, "-S").Output()
	if err != nil {
		return nil
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "-A ") || strings.HasPrefix(l, "-N ") {
			lines = append(lines, l)
		}
	}
	return lines
}

func linkNames() []string {
	out, _ := exec.Command("ip", "-o", "link").Output()
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			names = append(names, strings.TrimSuffix(strings.Split(f[1], "@")[0], ":"))
		}
	}
	return names
}

// newLinks lists the links of now that were not there before.
func newLinks(before, now []string) []string {
	var out []string
	for _, l := range now {
		if !slices.Contains(before, l) {
			out = append(out, l)
		}
	}
	return out
}

func nftTables() []string {
	out, _ := exec.Command("nft", "list", "tables").Output()
	var ts []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			ts = append(ts, l)
		}
	}
	return ts
}

// startSwarm starts dockerd in dir, imports the images and initialises
// the swarm. On an error, what it started is torn down.
func startSwarm(dir string, images []benchImage, log io.Writer) (s *swarmSystem, err error) {
	s = &swarmSystem{dir: dir, socket: filepath.Join(dir, "docker.sock"), execRoot: filepath.Join(dir, "exec"), log: log,
		refs: map[string]string{}}
	s.before = takeHostState()
	defer func() {
		if err != nil {
			if terr := s.stop(); terr != nil {
				err = fmt.Errorf("%w; teardown: %v", err, terr)
			}
		}
	}()
	// With forwarding already on, dockerd leaves the FORWARD policy alone
	// (it sets it to DROP only when it turns forwarding on itself).
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return s, err
	}
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		return s, err
	}
	defer logf.Close()
	s.cmd = exec.Command(dockerd, "--data-root", filepath.Join(dir, "docker"), "--exec-root", s.execRoot,
		"--pidfile", filepath.Join(dir, "dockerd.pid"), "-H", "unix://"+s.socket,
		"--config-file", filepath.Join(dir, "daemon.json"), "--storage-driver", "overlay2", "--log-level", "warn")
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}\n"), 0o644); err != nil {
		return s, err
	}
	// Without it, every task start first tries to pull from the image's
	// registry, which does not exist: the images are imported.
	s.cmd.Env = append(os.Environ(), "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return s, fmt.Errorf("start dockerd: %w", err)
	}
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	s.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", s.socket)
		}}}
	ctx := context.Background()
	if err := waitUntil(60*time.Second, "dockerd", func() bool {
		var v map[string]any
		return s.get(ctx, "/version", &v) == nil
	}); err != nil {
		return s, s.withLog(err)
	}
	for _, im := range images {
		changes := []string{"--change", "CMD " + configField(im.img.Config, "config", "Cmd"), "--change", "ENV PATH=/bin"}
		args := append([]string{"import"}, changes...)
		ref := "local/" + strings.TrimPrefix(im.repo, "bench/") + ":" + im.tag
		args = append(args, "-", ref)
		s.refs[im.name] = ref
		if _, err := s.docker(ctx, bytes.NewReader(im.img.Layers[0]), args...); err != nil {
			return s, err
		}
	}
	if _, err := s.docker(ctx, nil, "swarm", "init", "--advertise-addr", "127.0.0.1"); err != nil {
		return s, err
	}
	return s, nil
}

// configField picks a field of an image config's JSON, as JSON (the exec
// form docker import's --change CMD takes).
func configField(doc []byte, keys ...string) string {
	var v any
	_ = json.Unmarshal(doc, &v)
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func (s *swarmSystem) name() string { return "swarm" }

// image: the imported images are local/web:1, local/web:2, local/bad:1.
func (s *swarmSystem) image(which string) string { return s.refs[which] }
func (s *swarmSystem) header() string            { return "version: \"3.8\"\n" }

// docker runs the CLI against our dockerd only (its own config dir too).
func (s *swarmSystem) docker(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, dockerCLI, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+s.socket, "DOCKER_CONFIG="+filepath.Join(s.dir, "cli"))
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (s *swarmSystem) deploy(ctx context.Context, stack, file string) error {
	_, err := s.docker(ctx, nil, "stack", "deploy", "--resolve-image", "never", "-c", file, stack)
	return err
}

func (s *swarmSystem) scale(ctx context.Context, service string, replicas int) error {
	_, err := s.docker(ctx, nil, "service", "scale", "--detach", fmt.Sprintf("%s=%d", service, replicas))
	return err
}

func (s *swarmSystem) rm(ctx context.Context, stack string) error {
	_, err := s.docker(ctx, nil, "stack", "rm", stack)
	return err
}

var errNoObject = errors.New("404")

// get decodes an Engine API answer; errNoObject on 404.
func (s *swarmSystem) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/"+engineAPI+path, nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return json.NewDecoder(resp.Body).Decode(v)
	case http.StatusNotFound:
		return errNoObject
	}
	b, _ := io.ReadAll(resp.Body)
	return fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
}

func filters(kv map[string][]string) string {
	b, _ := json.Marshal(kv)
	return url.QueryEscape(string(b))
}

type swarmService struct {
	UpdateStatus *struct {
		State     string
		StartedAt time.Time
	}
	Endpoint struct {
		VirtualIPs []struct{ NetworkID, Addr string }
	}
}

type swarmTask struct {
	ID           string
	DesiredState string
	Status       struct {
		State           string
		ContainerStatus struct {
			ContainerID string
			PID         int
		}
	}
	Spec struct {
		ContainerSpec struct{ Image string }
	}
}

// swarmEnded are the task states after which a task runs no more.
var swarmEnded = []string{"complete", "shutdown", "failed", "rejected", "orphaned", "remove"}

func (s *swarmSystem) tasks(ctx context.Context, service string) ([]swarmTask, error) {
	var ts []swarmTask
	return ts, s.get(ctx, "/tasks?filters="+filters(map[string][]string{"service": {service}}), &ts)
}

func (s *swarmSystem) observe(ctx context.Context, service string, since time.Time) (observation, error) {
	var svc swarmService
	err := s.get(ctx, "/services/"+url.PathEscape(service), &svc)
	if errors.Is(err, errNoObject) {
		return observation{}, nil
	}
	if err != nil {
		return observation{}, err
	}
	o := observation{exists: true}
	if u := svc.UpdateStatus; u != nil && !u.StartedAt.Before(since) {
		o.update = u.State
	}
	if len(svc.Endpoint.VirtualIPs) > 0 {
		o.vip = svc.Endpoint.VirtualIPs[0].Addr
	}
	ts, err := s.tasks(ctx, service)
	if err != nil {
		return observation{}, err
	}
	for _, t := range ts {
		o.tasks = append(o.tasks, taskObs{id: t.ID, image: t.Spec.ContainerSpec.Image,
			desiredRunning: t.DesiredState == "running", running: t.Status.State == "running",
			live: !slices.Contains(swarmEnded, t.Status.State)})
	}
	return o, nil
}

func (s *swarmSystem) gone(ctx context.Context, stack, service string) (bool, error) {
	var cs []json.RawMessage
	if err := s.get(ctx, "/containers/json?all=1&filters="+filters(map[string][]string{"label": {"com.docker.swarm.service.name=" + service}}), &cs); err != nil {
		return false, err
	}
	if len(cs) > 0 {
		return false, nil
	}
	var nw json.RawMessage
	err := s.get(ctx, "/networks/"+url.PathEscape(stack+"_default"), &nw)
	if errors.Is(err, errNoObject) {
		return true, nil
	}
	return false, err
}

func (s *swarmSystem) killOne(ctx context.Context, service string) (string, error) {
	ts, err := s.tasks(ctx, service)
	if err != nil {
		return "", err
	}
	for _, t := range ts {
		if t.DesiredState == "running" && t.Status.State == "running" {
			return t.ID, killInit(t.Status.ContainerStatus.PID)
		}
	}
	return "", fmt.Errorf("no running task of %s", service)
}

func (s *swarmSystem) memory() (memory, error) {
	in := s.execRoot + "/"
	m := memory{groups: []memGroup{
		measureGroup("dockerd", []int{s.cmd.Process.Pid}),
		measureGroup("containerd", processes(func(c string) bool {
			return strings.Contains(c, "containerd --config "+in)
		})),
		measureGroup("shims", processes(func(c string) bool {
			return strings.Contains(c, "containerd-shim") && strings.Contains(c, "-address "+in)
		})),
	}}
	if m.groups[0].procs != 1 || m.groups[1].procs != 1 {
		return m, fmt.Errorf("dockerd or its containerd is not running: %s", m)
	}
	return m, nil
}

func (s *swarmSystem) daemons() []int {
	in := s.execRoot + "/"
	return append([]int{s.cmd.Process.Pid}, processes(func(c string) bool {
		return strings.Contains(c, "containerd --config "+in)
	})...)
}

func (s *swarmSystem) logFiles() []string { return []string{filepath.Join(s.dir, "dockerd.log")} }

// stop leaves the swarm, stops dockerd (its containerd and shims go with
// it), unmounts what it left under the directory, deletes docker0 and
// docker_gwbridge and only the iptables rules and chains docker made, and
// restores ip_forward. It says what it could not undo.
func (s *swarmSystem) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var problems []string
	if s.cmd != nil && s.cmd.Process != nil && s.alive() {
		for _, st := range []string{"s10", "s50"} {
			_, _ = s.docker(ctx, nil, "stack", "rm", st)
		}
		_ = waitUntil(60*time.Second, "swarm's containers to go", func() bool {
			var cs []json.RawMessage
			return s.get(ctx, "/containers/json?all=1", &cs) == nil && len(cs) == 0
		})
		if _, err := s.docker(ctx, nil, "swarm", "leave", "--force"); err != nil {
			problems = append(problems, err.Error())
		}
		if out, err := s.docker(ctx, nil, "ps", "-aq"); err == nil && strings.TrimSpace(out) != "" {
			_, _ = s.docker(ctx, nil, append([]string{"rm", "-f"}, strings.Fields(out)...)...)
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(60 * time.Second):
			problems = append(problems, "dockerd did not stop within 60s: killed")
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
	}
	// dockerd's containerd exits with it; shims of our exec root must not
	// outlive it.
	in := s.execRoot + "/"
	_ = waitUntil(20*time.Second, "dockerd's containerd to exit", func() bool {
		return len(processes(func(c string) bool { return strings.Contains(c, "containerd --config "+in) })) == 0
	})
	for _, pid := range processes(func(c string) bool { return strings.Contains(c, in) }) {
		problems = append(problems, fmt.Sprintf("killed leftover process %d", pid))
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	unmountUnder(s.dir)
	for _, l := range []string{"docker_gwbridge", "docker0"} {
		if !slices.Contains(s.before.links, l) && slices.Contains(linkNames(), l) {
			if out, err := exec.Command("ip", "link", "del", l).CombinedOutput(); err != nil {
				problems = append(problems, fmt.Sprintf("ip link del %s: %v: %s", l, err, out))
			}
		}
	}
	problems = append(problems, s.removeRules()...)
	for _, f := range dockerdFiles {
		if !s.before.files[f] {
			_ = os.Remove(f) // a directory only if empty
		}
	}
	// Links that came up meanwhile are someone else's (docker's own are
	// gone with its containers and networks): whoever made them may need
	// forwarding on, so it stays on then.
	var others []string
	for _, l := range newLinks(s.before.links, linkNames()) {
		if strings.HasPrefix(l, "docker") {
			problems = append(problems, "link left: "+l)
		} else {
			others = append(others, l)
		}
	}
	if cur, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(string(cur)) != s.before.ipForward && s.before.ipForward != "" {
		if len(others) > 0 {
			fmt.Fprintf(s.log, "swarm teardown: ip_forward left at %s (it was %s): links came up meanwhile: %v\n",
				strings.TrimSpace(string(cur)), s.before.ipForward, others)
		} else if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte(s.before.ipForward), 0o644); err != nil {
			problems = append(problems, "restore ip_forward: "+err.Error())
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("swarm teardown: %s", strings.Join(problems, "; "))
	}
	return nil
}

func (s *swarmSystem) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// dockerRule says whether an iptables line is docker's.
func dockerRule(l string) bool {
	for _, k := range []string{"DOCKER", "docker0", "docker_gwbridge", "--dport 4789"} {
		if strings.Contains(l, k) {
			return true
		}
	}
	return false
}

// removeRules deletes the iptables rules and chains docker added since
// startSwarm, then the tables iptables-nft made for them if they are
// empty and were not there before, and puts the FORWARD policy back.
func (s *swarmSystem) removeRules() []string {
	var problems []string
	for _, t := range iptablesTables {
		var chains []string
		for _, l := range iptablesLines(t) {
			if slices.Contains(s.before.rules[t], l) || !dockerRule(l) {
				continue
			}
			if c, ok := strings.CutPrefix(l, "-N "); ok {
				chains = append(chains, c)
				continue
			}
			args := append([]string{"-w", "-t", t, "-D"}, strings.Fields(strings.TrimPrefix(l, "-A "))...)
			if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
				problems = append(problems, fmt.Sprintf("iptables -t %s %s: %v: %s", t, l, err, out))
			}
		}
		for _, c := range chains {
			_ = exec.Command("iptables", "-w", "-t", t, "-F", c).Run()
			if out, err := exec.Command("iptables", "-w", "-t", t, "-X", c).CombinedOutput(); err != nil {
				problems = append(problems, fmt.Sprintf("iptables -t %s -X %s: %v: %s", t, c, err, out))
			}
		}
	}
	if out, _ := exec.Command("iptables", "-w", "-S", "FORWARD").Output(); strings.Contains(string(out), "-P FORWARD DROP") {
		_ = exec.Command("iptables", "-w", "-P", "FORWARD", "ACCEPT").Run()
		problems = append(problems, "the FORWARD policy was DROP: set back to ACCEPT")
	}
	for _, tb := range nftTables() {
		if slices.Contains(s.before.nftTables, tb) {
			continue
		}
		f := strings.Fields(tb) // table ip nat
		if len(f) != 3 || f[1] != "ip" || !slices.Contains(iptablesTables, f[2]) {
			continue
		}
		out, err := exec.Command("nft", "list", "table", f[1], f[2]).Output()
		if err == nil && emptyTable(string(out)) {
			if out, err := exec.Command("nft", "delete", "table", f[1], f[2]).CombinedOutput(); err != nil {
				problems = append(problems, fmt.Sprintf("nft delete %s: %v: %s", tb, err, out))
			}
		}
	}
	return problems
}

// emptyTable says whether `nft list table` output holds chains without rules.
func emptyTable(listing string) bool {
	for _, l := range strings.Split(listing, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l == "}" || strings.HasPrefix(l, "table ") || strings.HasPrefix(l, "chain ") || strings.HasPrefix(l, "type ") {
			continue
		}
		return false
	}
	return true
}

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(dir string) {
	b, _ := os.ReadFile("/proc/mounts")
	var ms []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			ms = append(ms, f[1])
		}
	}
	slices.Sort(ms)
	for i := len(ms) - 1; i >= 0; i-- {
		_ = syscall.Unmount(ms[i], syscall.MNT_DETACH)
	}
}

func (s *swarmSystem) withLog(err error) error {
	b, _ := os.ReadFile(filepath.Join(s.dir, "dockerd.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return fmt.Errorf("%w\n%s", err, strings.Join(lines, "\n"))
}
