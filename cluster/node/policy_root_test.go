//go:build porting

package node

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
)

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
