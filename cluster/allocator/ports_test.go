package allocator

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/google/go-cmp/cmp"
)

// allocate runs Decide's port step over services and returns each one's
// Endpoint.Ports afterwards, and the problems.
func allocatePorts(t *testing.T, svcs ...*api.Service) (map[string][]api.PortConfig, []error) {
	t.Helper()
	ch, err := Decide(plan("10.64.0.0/16", 24, "10.96.0.0/24"), nil, svcs)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]api.PortConfig{}
	for _, s := range svcs {
		if s.Endpoint != nil {
			out[s.ID] = s.Endpoint.Ports
		}
	}
	return out, ch.Problems
}

func published(ps []api.PortConfig) string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%d:%d/%s/%s", p.Published, p.Target, p.Protocol, p.Mode))
	}
	return strings.Join(out, " ")
}

func TestPortsChosenAndCopied(t *testing.T) {
	web := mkService("s1", api.EndpointVIP,
		ingress(80, 0), ingress(443, 8443), host(9100, 9100), host(9200, 0), udp(ingress(53, 0)))
	web.Spec.Endpoint.Ports[0].Name = "http"
	got, problems := allocatePorts(t, web)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	want := []api.PortConfig{
		{Name: "http", Protocol: api.ProtocolTCP, Target: 80, Published: 30000, Mode: api.PublishIngress},
		ingress(443, 8443), host(9100, 9100),
		host(9200, 0), // host mode with no published port: copied, published nowhere
		udp(ingress(53, 30000)),
	}
	if d := cmp.Diff(want, got["s1"]); d != "" {
		t.Errorf("Endpoint.Ports (-want +got):\n%s", d)
	}
	if web.Spec.Endpoint.Ports[0].Published != 0 {
		t.Error("the spec was changed")
	}
}

func TestPortsNoneNoEndpoint(t *testing.T) {
	s := mkService("s1", api.EndpointDNSRR)
	ch, err := Decide(plan("10.64.0.0/16", 24, "10.96.0.0/24"), nil, []*api.Service{s})
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Services) != 0 || s.Endpoint != nil {
		t.Errorf("a dnsrr service without ports changed: %+v", s.Endpoint)
	}
}

func TestPortsUniqueAgainstEveryPublishedPort(t *testing.T) {
	svcs := []*api.Service{
		mkService("s1", api.EndpointVIP, ingress(80, 30000)),
		mkService("s2", api.EndpointDNSRR, host(80, 30001)),
		mkService("s3", api.EndpointVIP, udp(ingress(80, 30002))), // another protocol: no clash
		mkService("s4", api.EndpointVIP, ingress(80, 0), ingress(81, 0)),
		mkService("s5", api.EndpointVIP, ingress(80, 0)),
	}
	got, problems := allocatePorts(t, svcs...)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if p := published(got["s4"]); p != "30002:80/tcp/ingress 30003:81/tcp/ingress" {
		t.Errorf("s4 = %s", p)
	}
	if p := published(got["s5"]); p != "30004:80/tcp/ingress" {
		t.Errorf("s5 = %s", p)
	}
}

func TestPortsStable(t *testing.T) {
	a := mkService("a", api.EndpointVIP, ingress(80, 0))
	b := mkService("b", api.EndpointVIP, ingress(80, 0), ingress(90, 0))
	cfg := plan("10.64.0.0/16", 24, "10.96.0.0/24")
	if _, err := Decide(cfg, nil, []*api.Service{a, b}); err != nil {
		t.Fatal(err)
	}
	if published(a.Endpoint.Ports) != "30000:80/tcp/ingress" || published(b.Endpoint.Ports) != "30001:80/tcp/ingress 30002:90/tcp/ingress" {
		t.Fatalf("first pass: a %s, b %s", published(a.Endpoint.Ports), published(b.Endpoint.Ports))
	}
	// Another pass changes nothing.
	if ch, _ := Decide(cfg, nil, []*api.Service{a, b}); len(ch.Services) != 0 {
		t.Errorf("second pass rewrote %d services", len(ch.Services))
	}
	// A spec update that keeps b's port 90 and changes the rest: 90 keeps
	// its port, 80 is gone (its port free), new ports are new.
	b.Spec.Endpoint.Ports = []api.PortConfig{ingress(91, 0), ingress(90, 0), host(22, 2222)}
	ch, _ := Decide(cfg, nil, []*api.Service{a, b})
	if len(ch.Services) != 1 || ch.Services[0] != b {
		t.Errorf("changed %d services, want b only", len(ch.Services))
	}
	if p := published(b.Endpoint.Ports); p != "30003:91/tcp/ingress 30002:90/tcp/ingress 2222:22/tcp/host" {
		t.Errorf("b after update = %s", p)
	}
	// The name is part of what a port is: renamed, it is a new port.
	a.Spec.Endpoint.Ports[0].Name = "web"
	_, _ = Decide(cfg, nil, []*api.Service{a, b})
	if p := published(a.Endpoint.Ports); p != "30004:80/tcp/ingress" {
		t.Errorf("a renamed = %s", p)
	}
	// Ports removed from the spec leave Endpoint.Ports empty.
	a.Spec.Endpoint.Ports = nil
	ch, _ = Decide(cfg, nil, []*api.Service{a, b})
	if len(ch.Services) != 1 || a.Endpoint.Ports != nil {
		t.Errorf("a without ports: Endpoint.Ports = %v, changes %d", a.Endpoint.Ports, len(ch.Services))
	}
}

func TestPortsExplicitWinsOverHeld(t *testing.T) {
	a := mkService("a", api.EndpointVIP, ingress(80, 0))
	cfg := plan("10.64.0.0/16", 24, "10.96.0.0/24")
	_, _ = Decide(cfg, nil, []*api.Service{a})
	if a.Endpoint.Ports[0].Published != 30000 {
		t.Fatalf("a = %s", published(a.Endpoint.Ports))
	}
	// A new service asks for a's port by number (host mode too): it gets
	// it, and a moves.
	b := mkService("b", api.EndpointDNSRR, host(8080, 30000))
	ch, _ := Decide(cfg, nil, []*api.Service{a, b})
	if p := published(a.Endpoint.Ports); p != "30001:80/tcp/ingress" {
		t.Errorf("a = %s, want it moved to 30001", p)
	}
	if p := published(b.Endpoint.Ports); p != "30000:8080/tcp/host" {
		t.Errorf("b = %s", p)
	}
	if len(ch.Services) != 2 {
		t.Errorf("changed %d services, want 2", len(ch.Services))
	}
}

func TestPortsDoubleHoldResolved(t *testing.T) {
	// Two services claim the same chosen port (written by hand, say): the
	// older (lower ID) keeps it.
	old := mkService("a", api.EndpointVIP, ingress(80, 0))
	old.Endpoint = &api.Endpoint{Ports: []api.PortConfig{ingress(80, 30500)}}
	young := mkService("b", api.EndpointVIP, ingress(80, 0))
	young.Endpoint = &api.Endpoint{Ports: []api.PortConfig{ingress(80, 30500)}}
	for _, order := range [][]*api.Service{{old, young}, {young, old}} {
		old.Endpoint.Ports[0].Published, young.Endpoint.Ports[0].Published = 30500, 30500
		got, _ := allocatePorts(t, order...)
		if p := published(got["a"]); p != "30500:80/tcp/ingress" {
			t.Errorf("older = %s, want it to keep 30500", p)
		}
		if p := published(got["b"]); p != "30501:80/tcp/ingress" {
			t.Errorf("younger = %s, want 30501 (after the newest holder's)", p)
		}
	}
}

func TestPortsHeldOutsideRangeNotKept(t *testing.T) {
	// A port that was published explicitly and is now left to the cluster
	// gets one from the range.
	s := mkService("a", api.EndpointVIP, ingress(80, 0))
	s.Endpoint = &api.Endpoint{Ports: []api.PortConfig{ingress(80, 8080)}}
	got, _ := allocatePorts(t, s)
	if p := published(got["a"]); p != "30000:80/tcp/ingress" {
		t.Errorf("a = %s", p)
	}
	// One in the range is kept.
	s.Endpoint = &api.Endpoint{Ports: []api.PortConfig{ingress(80, 31000)}}
	got, _ = allocatePorts(t, s)
	if p := published(got["a"]); p != "31000:80/tcp/ingress" {
		t.Errorf("a = %s", p)
	}
	// A host-mode one is not the cluster's choice.
	s.Endpoint = &api.Endpoint{Ports: []api.PortConfig{host(80, 31000)}}
	got, _ = allocatePorts(t, s)
	if p := published(got["a"]); p != "30000:80/tcp/ingress" {
		t.Errorf("a = %s", p)
	}
}

// filler publishes every port of the range but the given ones, explicitly.
func filler(id string, proto api.Protocol, except ...uint32) *api.Service {
	s := mkService(id, api.EndpointDNSRR)
	skip := map[uint32]bool{}
	for _, p := range except {
		skip[p] = true
	}
	for p := FirstDynamicPort; p <= LastDynamicPort; p++ {
		if !skip[p] {
			s.Spec.Endpoint.Ports = append(s.Spec.Endpoint.Ports, api.PortConfig{Protocol: proto, Target: 1, Published: p, Mode: api.PublishHost})
		}
	}
	return s
}

func TestPortsExhausted(t *testing.T) {
	full := filler("a", api.ProtocolTCP, 31234)
	s := mkService("s", api.EndpointVIP, ingress(80, 0), ingress(81, 0), udp(ingress(82, 0)))
	s.Spec.Name = "shop_web"
	got, problems := allocatePorts(t, full, s)
	if p := published(got["s"]); p != "31234:80/tcp/ingress 0:81/tcp/ingress 30000:82/udp/ingress" {
		t.Errorf("s = %s", p)
	}
	if len(problems) != 1 || !errors.Is(problems[0], ErrExhausted) {
		t.Fatalf("problems = %v, want one matching ErrExhausted", problems)
	}
	if want := "published port range 30000-32767/tcp exhausted: service shop_web port 81/tcp gets none"; problems[0].Error() != want {
		t.Errorf("problem = %q, want %q", problems[0], want)
	}
	// A pass with nothing freed rewrites nothing; once a port frees, the
	// waiting one gets it.
	ch, err := Decide(plan("10.64.0.0/16", 24, "10.96.0.0/24"), nil, []*api.Service{full, s})
	if err != nil || len(ch.Services) != 0 || len(ch.Problems) != 1 {
		t.Errorf("second pass: %d changes, problems %v, err %v", len(ch.Services), ch.Problems, err)
	}
	full.Spec.Endpoint.Ports = full.Spec.Endpoint.Ports[1:] // frees 30000
	got, problems = allocatePorts(t, full, s)
	if p := published(got["s"]); p != "31234:80/tcp/ingress 30000:81/tcp/ingress 30000:82/udp/ingress" || len(problems) != 0 {
		t.Errorf("after 30000 frees: s = %s, problems %v", p, problems)
	}
}

func TestPortsCursorWraps(t *testing.T) {
	cfg := plan("10.64.0.0/16", 24, "10.96.0.0/24")
	// The newest service holding a chosen port holds the range's last:
	// the next port is searched for from the start.
	a := mkService("a", api.EndpointVIP, ingress(80, 0))
	a.Endpoint = &api.Endpoint{Ports: []api.PortConfig{ingress(80, 30000)}}
	b := mkService("b", api.EndpointVIP, ingress(80, 0))
	b.Endpoint = &api.Endpoint{Ports: []api.PortConfig{ingress(80, LastDynamicPort)}}
	c := mkService("c", api.EndpointVIP, ingress(80, 0))
	if _, err := Decide(cfg, nil, []*api.Service{a, b, c}); err != nil {
		t.Fatal(err)
	}
	if p := published(c.Endpoint.Ports); p != "30001:80/tcp/ingress" {
		t.Errorf("c = %s, want 30001 (wrapped, past a's 30000)", p)
	}
	// A freed port is not handed out again at once: d gets the one after
	// the newest holder's, not a's freed 30000.
	a.Spec.Endpoint.Ports = nil
	d := mkService("d", api.EndpointVIP, ingress(80, 0))
	if _, err := Decide(cfg, nil, []*api.Service{a, b, c, d}); err != nil {
		t.Fatal(err)
	}
	if p := published(d.Endpoint.Ports); p != "30002:80/tcp/ingress" {
		t.Errorf("d = %s, want 30002", p)
	}
}
