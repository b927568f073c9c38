package allocator

import (
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
)

func TestDecideNodes(t *testing.T) {
	cfg := plan("10.64.0.0/26", 28, "10.96.0.0/24") // 4 subnets
	nodes := []*api.Node{
		mkNode("a", withSubnet("10.64.0.0/28")),           // keeps it
		mkNode("b", withSubnet("10.64.0.16/28"), removed), // loses it
		mkNode("c"), // gets one: b's
		mkNode("d", func(n *api.Node) { n.Description.Addrs = []string{"10.64.0.40"} }), // overlaps
		mkNode("e", func(n *api.Node) { n.SubnetError = "old news" }),                   // gets one
		mkNode("f", withSubnet("10.64.0.48/28"), func(n *api.Node) { n.SubnetError = "stale" }),
		mkNode("g"), // the pool is full
	}
	ch, err := Decide(cfg, nodes, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range nodes {
		got = append(got, n.ID+"="+n.Subnet+"!"+n.SubnetError)
	}
	want := []string{
		"a=10.64.0.0/28!", "b=!", "c=10.64.0.16/28!",
		"d=!node d: address 10.64.0.40 is in the task pool 10.64.0.0/26: it gets no task subnet (bootstrap a cluster with other --task-pool/--vip-pool, or give the node other addresses)",
		"e=10.64.0.32/28!", "f=10.64.0.48/28!",
		"g=!task pool 10.64.0.0/26 has no free /28 for node g",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("nodes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var changed []string
	for _, n := range ch.Nodes {
		changed = append(changed, n.ID)
	}
	if strings.Join(changed, " ") != "b c d e f g" {
		t.Errorf("changed nodes = %v, want b c d e f g", changed)
	}
	// Decided again, nothing changes.
	if ch, _ := Decide(cfg, nodes, nil); len(ch.Nodes) != 0 {
		t.Errorf("second pass changed %d nodes", len(ch.Nodes))
	}
}

func TestDecideServices(t *testing.T) {
	cfg := plan("10.64.0.0/16", 24, "10.96.0.0/30") // 2 VIPs
	vip1 := mkService("s1", api.EndpointVIP)
	rr := withVIP(mkService("s2", api.EndpointDNSRR), "10.96.0.1") // switched to dnsrr: loses it
	vip2 := mkService("s3", api.EndpointVIP)
	vip3 := mkService("s4", api.EndpointVIP, ingress(80, 0)) // no VIP left; ports still
	svcs := []*api.Service{vip1, rr, vip2, vip3}
	ch, err := Decide(cfg, nil, svcs)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range svcs {
		e := "-"
		if s.Endpoint != nil {
			e = s.Endpoint.VIP + "|" + published(s.Endpoint.Ports)
			if s.Endpoint.Problem != "" {
				e += "|" + s.Endpoint.Problem
			}
		}
		got = append(got, s.ID+"="+e)
	}
	// rr's VIP counted as used this pass: it is free from the next. The
	// services left without one say so.
	if want := "s1=10.96.0.2| s2=| s3=||VIP pool 10.96.0.0/30 exhausted s4=|30000:80/tcp/ingress|VIP pool 10.96.0.0/30 exhausted"; strings.Join(got, " ") != want {
		t.Errorf("services = %q, want %q", strings.Join(got, " "), want)
	}
	if len(ch.Services) != 4 {
		t.Errorf("changed %d services, want 4", len(ch.Services))
	}
	if len(ch.Problems) != 2 || !strings.Contains(ch.Problems[0].Error(), "service svc-s3 gets no VIP: VIP pool 10.96.0.0/30 exhausted") {
		t.Errorf("problems = %v", ch.Problems)
	}
	// Next pass: the freed VIP goes to s3, then s4 waits.
	ch, _ = Decide(cfg, nil, svcs)
	if vip2.Endpoint == nil || vip2.Endpoint.VIP != "10.96.0.1" || vip2.Endpoint.Problem != "" || vip3.Endpoint.VIP != "" || vip3.Endpoint.Problem == "" || len(ch.Services) != 1 || len(ch.Problems) != 1 {
		t.Errorf("second pass: s3 %+v, s4 %+v, %d changes, problems %v", vip2.Endpoint, vip3.Endpoint, len(ch.Services), ch.Problems)
	}
	// s1 switches to dnsrr: its VIP goes to s4 on the pass after.
	vip1.Spec.Endpoint.Mode = api.EndpointDNSRR
	_, _ = Decide(cfg, nil, svcs)
	_, _ = Decide(cfg, nil, svcs)
	if vip1.Endpoint.VIP != "" || vip3.Endpoint.VIP != "10.96.0.2" || vip3.Endpoint.Problem != "" {
		t.Errorf("after s1 went dnsrr: s1 %q, s4 %q", vip1.Endpoint.VIP, vip3.Endpoint.VIP)
	}
}

func TestDecideBadPlan(t *testing.T) {
	if _, err := Decide(plan("10.64.0.0/16", 8, "10.96.0.0/24"), []*api.Node{mkNode("a")}, nil); err == nil {
		t.Error("a plan whose node subnets do not fit was accepted")
	}
	if _, err := Decide(plan("10.64.0.0/16", 24, "bad"), nil, nil); err == nil {
		t.Error("a bad VIP pool was accepted")
	}
}
