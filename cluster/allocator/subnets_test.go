package allocator

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

func removed(n *api.Node) { n.RemovedAt = time.Unix(1, 0) }

func TestSubnetsLowestFree(t *testing.T) {
	cfg := plan("10.64.0.0/26", 28, "10.96.0.0/24") // 4 subnets of /28
	nodes := []*api.Node{
		mkNode("a", withSubnet("10.64.0.16/28")),
		mkNode("b", withSubnet("10.64.0.0/28"), removed), // a removed node's subnet is free
		mkNode("c", withSubnet("10.64.0.48/28")),
	}
	s, err := NewSubnets(cfg, nodes)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, id := range []string{"d", "e", "f"} {
		p, err := s.Next(mkNode(id))
		if err != nil {
			got = append(got, err.Error())
			if !errors.Is(err, ErrExhausted) {
				t.Errorf("error %v does not match ErrExhausted", err)
			}
			continue
		}
		got = append(got, p)
	}
	want := []string{"10.64.0.0/28", "10.64.0.32/28", "task pool 10.64.0.0/26 has no free /28 for node f"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("subnets = %q, want %q", got, want)
	}
}

func TestSubnetsOverlap(t *testing.T) {
	cfg := plan("10.64.0.0/16", 24, "10.96.0.0/24")
	s, err := NewSubnets(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := mkNode("lan", func(n *api.Node) { n.Description.Addrs = []string{"192.168.1.4", "10.64.9.9", "10.96.0.3", "junk"} })
	_, err = s.Next(n)
	if err == nil {
		t.Fatal("a node whose addresses lie in the pools got a subnet")
	}
	for _, want := range []string{"node lan", "address 10.64.9.9 is in the task pool 10.64.0.0/16", "address 10.96.0.3 is in the VIP pool 10.96.0.0/24"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if errors.Is(err, ErrExhausted) {
		t.Error("an overlap is not exhaustion")
	}
	// The node took nothing: the next one gets the first subnet.
	if p, err := s.Next(mkNode("ok")); err != nil || p != "10.64.0.0/24" {
		t.Errorf("next node got %q, %v; want 10.64.0.0/24", p, err)
	}
}

func TestSubnetsBadPlan(t *testing.T) {
	for _, tc := range []struct {
		cfg  api.NetworkConfig
		want string
	}{
		{plan("10.64.0.0/16", 16, "10.96.0.0/24"), "node subnets of /16 do not fit in the task pool 10.64.0.0/16"},
		{plan("10.64.0.0/16", 33, "10.96.0.0/24"), "node subnets of /33"},
		{plan("x", 24, "10.96.0.0/24"), "task pool"},
	} {
		if _, err := NewSubnets(tc.cfg, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestSubnetsSmallest(t *testing.T) {
	// A /30 node subnet is one task address; a pool of one such subnet.
	s, err := NewSubnets(plan("10.64.0.0/29", 30, "10.96.0.0/24"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"10.64.0.0/30", "10.64.0.4/30"} {
		if got, err := s.Next(mkNode("n")); err != nil || got != want {
			t.Errorf("Next = %q, %v; want %s", got, err, want)
		}
	}
	if _, err := s.Next(mkNode("n")); !errors.Is(err, ErrExhausted) {
		t.Errorf("Next = %v, want ErrExhausted", err)
	}
}
