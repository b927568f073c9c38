package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
)

// What gitorc's membership commands do on their own, apart from the node
// (whose side is in cluster/node: TestTokenTTL, TestJoinWorker_Root,
// TestNodeInspectShowsPolicy_Root).

// gitorc token refuses a negative --ttl itself, before it calls the
// node: the socket it is given does not exist, so an answer about it
// would mean the flag was sent.
func TestTokenRefusesANegativeTTL(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "none.sock")
	_, errOut, code := run(t, "token", "worker", "--socket", socket, "--ttl", "-1s")
	if code == 0 || !strings.Contains(errOut, "--ttl -1s: must not be negative") {
		t.Errorf("a negative TTL: exit %d %s; want it refused as negative", code, errOut)
	}
	if strings.Contains(errOut, "none.sock") {
		t.Errorf("a negative TTL reached the node: %s", errOut)
	}
}

// gitorc node inspect prints the node as JSON with its effective policy:
// the binds, capabilities and sysctls its flags add, and the defaults.
func TestNodeInspectPrintsTheEffectivePolicy(t *testing.T) {
	p := &api.NodePolicy{AllowBinds: []string{"/srv"}, AllowCaps: []string{"NET_ADMIN"}, AllowSysctls: []string{"vm.swappiness"}}
	n := controlapi.Node{Name: "node", Policy: p.Effective()}
	n.ID = "n1"
	n.Description.Policy = p
	var out bytes.Buffer
	if err := writeJSON(&out, []controlapi.Node{n}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"binds": [`, `"/srv"`, `"NET_ADMIN"`, `"CHOWN"`, `"net.*"`, `"vm.swappiness"`, `"privileged": false`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("node inspect lacks %s of the effective policy:\n%s", want, out.String())
		}
	}
}
