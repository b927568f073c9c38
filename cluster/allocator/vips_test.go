package allocator

import (
	"errors"
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
)

func withVIP(s *api.Service, vip string) *api.Service {
	s.Endpoint = &api.Endpoint{VIP: vip}
	return s
}

func TestVIPsTinyPool(t *testing.T) {
	// A /29 has 6 VIPs: .1 to .6; never the network or broadcast address.
	v, err := NewVIPs(plan("10.64.0.0/16", 24, "10.96.0.0/29"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		s, err := v.Next()
		if err != nil {
			if !errors.Is(err, ErrExhausted) {
				t.Fatalf("Next: %v, want ErrExhausted", err)
			}
			if want := "VIP pool 10.96.0.0/29 exhausted"; err.Error() != want {
				t.Errorf("error = %q, want %q", err, want)
			}
			break
		}
		got = append(got, s)
	}
	if want := "10.96.0.1 10.96.0.2 10.96.0.3 10.96.0.4 10.96.0.5 10.96.0.6"; strings.Join(got, " ") != want {
		t.Errorf("VIPs = %q, want %q", strings.Join(got, " "), want)
	}
}

func TestVIPsReadServices(t *testing.T) {
	svcs := []*api.Service{
		withVIP(mkService("s1", api.EndpointVIP), "10.96.0.1"),
		withVIP(mkService("s3", api.EndpointVIP), "10.96.0.3"), // newest: the search starts after it
		withVIP(mkService("s2", api.EndpointVIP), "10.96.0.5"),
		withVIP(mkService("s4", api.EndpointVIP), "bogus"),     // unreadable: ignored
		withVIP(mkService("s0", api.EndpointVIP), "10.97.0.1"), // outside the pool: ignored
		mkService("s5", api.EndpointDNSRR),
	}
	v, err := NewVIPs(plan("10.64.0.0/16", 24, "10.96.0.0/29"), svcs)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 4 {
		s, err := v.Next()
		if err != nil {
			got = append(got, "exhausted")
			break
		}
		got = append(got, s)
	}
	if want := "10.96.0.4 10.96.0.6 10.96.0.2 exhausted"; strings.Join(got, " ") != want {
		t.Errorf("VIPs = %q, want %q", strings.Join(got, " "), want)
	}
}

func TestVIPsBadPlan(t *testing.T) {
	if _, err := NewVIPs(plan("10.64.0.0/16", 24, "nope"), nil); err == nil || !strings.Contains(err.Error(), "vip pool") {
		t.Errorf("err = %v, want one naming the vip pool", err)
	}
}

func TestWantsVIP(t *testing.T) {
	if !WantsVIP(mkService("a", api.EndpointVIP)) || WantsVIP(mkService("b", api.EndpointDNSRR)) {
		t.Error("vip mode wants a VIP, dnsrr does not")
	}
}
