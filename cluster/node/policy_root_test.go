package node

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/gitorc/gitorc/compose"
	"github.com/google/go-cmp/cmp"
)

// A node reports the policy its flags set: the control API's node (what
// gitorc node inspect shows) holds it, defaults included, and a stack
// needing what it does not allow is refused at deploy: by gitorc stack
// deploy's check at its line, against the policies the nodes report, and
// by the manager. (The --allow-* flags' parsing into the policy:
// cmd/gitorc's TestPolicyFlags.)
func TestNodeInspectShowsPolicy_Root(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (containerd)")
	}
	for _, p := range []string{"/usr/bin/containerd", "/usr/sbin/runc"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("needs %s: run scripts/install-deps.sh", p)
		}
	}
	ctx := context.Background()
	tmp := t.TempDir()
	// The policy of --allow-bind /srv --allow-cap net_admin
	// --allow-sysctl vm.swappiness, as the flags normalise it.
	policy, err := api.NodePolicy{AllowBinds: []string{"/srv"}, AllowCaps: []string{"net_admin"}, AllowSysctls: []string{"vm.swappiness"}}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	// An address plan and overlay port of its own: other tests' nodes
	// may use the defaults on this host.
	f := testFlags{dataDir: filepath.Join(tmp, "node"), listen: freeAddr(t), raftListen: freeAddr(t), policy: &policy}
	b := &Bootstrap{Settings: f.settings(), Network: api.NetworkConfig{TaskPool: "10.233.0.0/16", VIPPool: "10.234.0.0/16", NodeSubnetBits: 24}}
	b.Settings.WireGuardPort = 51833
	if err := (&Config{DataDir: f.dataDir, Bootstrap: b}).Validate(); err != nil {
		t.Fatal(err)
	}
	d, err := bootstrap(f.dataDir, b)
	if err != nil {
		t.Fatal(err)
	}
	startNode(t, d, "node")
	c := client.Unix(socketFile(d.dir))

	var n controlapi.Node
	if err := storetest.WaitFor(func() bool {
		n, err = c.Node(ctx, d.state.ID)
		return err == nil && n.Description.Policy != nil
	}, 60*time.Second); err != nil {
		t.Fatalf("the node never showed its policy: %+v, %v", n.Description, err)
	}
	if diff := cmp.Diff(&api.NodePolicy{AllowBinds: []string{"/srv"}, AllowCaps: []string{"NET_ADMIN"}, AllowSysctls: []string{"vm.swappiness"}}, n.Description.Policy); diff != "" {
		t.Errorf("reported policy (-want +got):\n%s", diff)
	}
	// The effective policy: its flags' additions and the defaults.
	if e := n.Policy; !slices.Contains(e.Binds, "/srv") || !slices.Contains(e.Capabilities, "NET_ADMIN") ||
		!slices.Contains(e.Capabilities, "CHOWN") || !slices.Contains(e.Sysctls, "net.*") || !slices.Contains(e.Sysctls, "vm.swappiness") {
		t.Errorf("the node lacks the effective policy: %+v", e)
	}
	if n.Policy.Privileged || n.Policy.Unconfined {
		t.Errorf("effective policy %+v allows privileged or unconfined", n.Policy)
	}

	file := filepath.Join(tmp, "compose.yaml")
	stack := "services:\n  agent:\n    image: busybox\n    volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]\n"
	if err := os.WriteFile(file, []byte(stack), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = deployStackFile(ctx, c, "p", file)
	if want := "compose.yaml:4: services.agent.volumes.0: bind of /var/run/docker.sock: no node allows it (gitorc join --allow-bind)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("deploy of a docker.sock bind: %v; want %q", err, want)
	}
	// Sent without that check, the manager refuses it.
	st, err := compose.Load(ctx, compose.Source{Name: "p", Files: []string{file}, Root: tmp})
	if err != nil {
		t.Fatal(err)
	}
	req, err := deployRequest(st, tmp)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.DeployStack(ctx, "p", req)
	if want := "bind of /var/run/docker.sock: no node allows it (gitorc join --allow-bind)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("deploy of a docker.sock bind, unchecked by the client: %v; want %q", err, want)
	}
	if spec := specOf(t, d, "p_agent"); spec != nil {
		t.Errorf("the refused stack's service exists: %+v", spec)
	}
}
