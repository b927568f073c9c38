package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
)

func parsePolicyFlags(t *testing.T, args ...string) (*policyFlags, *pflag.FlagSet) {
	t.Helper()
	var f policyFlags
	fl := pflag.NewFlagSet("test", pflag.ContinueOnError)
	f.add(fl)
	if err := fl.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &f, fl
}

// bootstrap and join keep the policy their flags give; daemon changes
// only the parts it is given, "none" empties a list.
func TestPolicyFlags(t *testing.T) {
	f, _ := parsePolicyFlags(t, "--allow-bind", "/srv/", "--allow-bind", "/var/lib/app", "--allow-cap", "cap_net_admin", "--allow-sysctl", "vm.*")
	p, err := f.policy()
	if err != nil {
		t.Fatal(err)
	}
	want := &api.NodePolicy{AllowBinds: []string{"/srv", "/var/lib/app"}, AllowCaps: []string{"NET_ADMIN"}, AllowSysctls: []string{"vm.*"}}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("policy (-want +got):\n%s", diff)
	}

	st := &nodeState{Policy: p}
	f, fl := parsePolicyFlags(t, "--allow-bind", "none", "--allow-privileged")
	if changed, err := f.update(fl, st); err != nil || !changed {
		t.Fatalf("update: %v %v", changed, err)
	}
	want = &api.NodePolicy{AllowCaps: []string{"NET_ADMIN"}, AllowSysctls: []string{"vm.*"}, AllowPrivileged: true}
	if diff := cmp.Diff(want, st.Policy); diff != "" {
		t.Errorf("updated policy (-want +got):\n%s", diff)
	}
	f, fl = parsePolicyFlags(t)
	if changed, _ := f.update(fl, st); changed {
		t.Error("no flag given, yet the policy changed")
	}
	f, fl = parsePolicyFlags(t, "--allow-bind", "relative/path")
	if _, err := f.update(fl, st); err == nil || !strings.Contains(err.Error(), "--allow-bind") {
		t.Errorf("relative bind path: %v", err)
	}
}

// A node reports the policy its flags set: gitorc node inspect shows it,
// defaults included, and a stack needing what it does not allow is
// refused at deploy.
func TestNodeInspectShowsPolicy_Root(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (containerd)")
	}
	for _, p := range []string{"/usr/bin/containerd", "/usr/sbin/runc"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("needs %s: run scripts/install-deps.sh", p)
		}
	}
	tmp := t.TempDir()
	// An address plan and overlay port of its own: other tests' nodes
	// may use the defaults on this host.
	f := bootstrapFlags{dataDir: filepath.Join(tmp, "node"), listen: freeAddr(t), raftListen: freeAddr(t),
		plan:   planFlags{taskPool: "10.233.0.0/16", vipPool: "10.234.0.0/16", nodeSubnetBits: 24},
		net:    netFlags{wireGuardPort: 51833},
		policy: policyFlags{binds: []string{"/srv"}, caps: []string{"net_admin"}, sysctls: []string{"vm.swappiness"}}}
	d, err := bootstrap(f)
	if err != nil {
		t.Fatal(err)
	}
	startNode(t, d, "node")
	socket := socketFile(d.dir)

	var nodes []controlapi.Node
	var out string
	if err := storetest.WaitFor(func() bool {
		var code int
		out, _, code = run(t, "node", "inspect", "--socket", socket, "-o", "json", d.state.ID)
		return code == 0 && json.Unmarshal([]byte(out), &nodes) == nil && len(nodes) == 1 && nodes[0].Description.Policy != nil
	}, 60*time.Second); err != nil {
		t.Fatalf("node inspect never showed the node's policy: %s", out)
	}
	n := nodes[0]
	if diff := cmp.Diff(&api.NodePolicy{AllowBinds: []string{"/srv"}, AllowCaps: []string{"NET_ADMIN"}, AllowSysctls: []string{"vm.swappiness"}}, n.Description.Policy); diff != "" {
		t.Errorf("reported policy (-want +got):\n%s", diff)
	}
	if !strings.Contains(out, `"binds": [`) || !strings.Contains(out, `"/srv"`) || !strings.Contains(out, `"NET_ADMIN"`) || !strings.Contains(out, `"CHOWN"`) || !strings.Contains(out, `"net.*"`) {
		t.Errorf("node inspect lacks the effective policy:\n%s", out)
	}
	if n.Policy.Privileged || n.Policy.Unconfined {
		t.Errorf("effective policy %+v allows privileged or unconfined", n.Policy)
	}

	file := filepath.Join(tmp, "compose.yaml")
	stack := "services:\n  agent:\n    image: busybox\n    volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]\n"
	if err := os.WriteFile(file, []byte(stack), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := run(t, "stack", "deploy", "--socket", socket, "-c", file, "p")
	if want := "compose.yaml:4: services.agent.volumes.0: bind of /var/run/docker.sock: no node allows it (gitorc join --allow-bind)"; code == 0 || !strings.Contains(errOut, want) {
		t.Errorf("deploy of a docker.sock bind: exit %d, %s; want %q", code, errOut, want)
	}
}
