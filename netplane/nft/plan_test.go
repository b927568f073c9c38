package nft

import (
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
)

// A change of one service touches only its chains; each plan is the nft
// script of what Apply sends.
func TestDiffGolden(t *testing.T) {
	base := mustBuild(t, shopView(), Options{})
	for _, tc := range []struct {
		name string
		edit func(v *api.NetView)
	}{
		{"backend-removed", func(v *api.NetView) { v.Services[0].Backends = v.Services[0].Backends[1:] }},
		{"backend-added", func(v *api.NetView) {
			v.Services[3].Backends = append(v.Services[3].Backends, api.NetBackend{TaskID: idTaskMon, NodeID: "n2", Addr: "10.64.2.20"})
		}},
		{"service-gone", func(v *api.NetView) { v.Services = v.Services[1:] }},
		{"member-added", func(v *api.NetView) {
			v.Networks[0].Members = append(v.Networks[0].Members, "10.64.3.40")
			v.Peers = v.Peers[:1]
		}},
		{"network-gone", func(v *api.NetView) { v.Networks = v.Networks[:2] }},
		{"vip-moved", func(v *api.NetView) { v.Services[1].VIP, v.Services[2].VIP = "", v.Services[1].VIP }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := shopView()
			tc.edit(v)
			p := diff(base, mustBuild(t, v, Options{}))
			if p.full != nil {
				t.Fatal("plan replaces the whole table")
			}
			golden(t, "diff-"+tc.name, p.String())
		})
	}
}

func TestDiffUnchanged(t *testing.T) {
	if p := diff(mustBuild(t, shopView(), Options{}), mustBuild(t, shopView(), Options{})); !p.empty() {
		t.Fatalf("plan for an equal ruleset:\n%s", p)
	}
	if p := diff(nil, mustBuild(t, shopView(), Options{})); p.full == nil ||
		!strings.HasPrefix(p.String(), "add table inet gitorc\ndelete table inet gitorc\ntable inet gitorc {") {
		t.Fatalf("first plan:\n%s", p)
	}
}
