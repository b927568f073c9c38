package main

import (
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/node"
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

	st := &node.State{Policy: p}
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
