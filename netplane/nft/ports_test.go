package nft

import (
	"errors"
	"math/rand"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gitorc/gitorc/cluster/api"
)

const (
	idSvcMetrics  = "1e7r4kd2q8000p3k9ss0kq1e2g"
	idTaskMetric2 = "2g9m1v0oq8000p3k9ss0kq1e2g"
	idTaskMetric3 = "2h9m1v0oq8000p3k9ss0kq1e2g"
)

// portsView is shopView with published ports: web (ingress tcp 80 to
// 8080, its one backend local), api (ingress tcp 8080 and 8081 to 8080,
// three backends; host tcp 9000, one of them local), db (host tcp 5432,
// its backend local), cache (ingress tcp 6379, no backend) and metrics
// (ingress udp 8125, host tcp 9100; two backends, both remote).
func portsView() *api.NetView {
	v := shopView()
	tcp := func(published, target uint32, mode api.PublishMode) api.PortConfig {
		return api.PortConfig{Protocol: api.ProtocolTCP, Published: published, Target: target, Mode: mode}
	}
	for i := range v.Services {
		s := &v.Services[i]
		switch s.ID {
		case idSvcWeb:
			s.Ports = []api.PortConfig{tcp(80, 8080, api.PublishIngress)}
		case idSvcAPI:
			s.Ports = []api.PortConfig{tcp(8081, 8080, api.PublishIngress), tcp(8080, 8080, api.PublishIngress), tcp(9000, 9000, api.PublishHost)}
		case idSvcDB:
			s.Ports = []api.PortConfig{tcp(5432, 5432, api.PublishHost)}
		case idSvcCache:
			s.Ports = []api.PortConfig{tcp(6379, 6379, api.PublishIngress)}
		}
	}
	v.Services = append(v.Services, api.NetService{ID: idSvcMetrics, Name: "metrics", Mode: api.EndpointVIP, VIP: "10.96.0.13",
		Ports: []api.PortConfig{
			{Protocol: api.ProtocolUDP, Published: 8125, Target: 8125, Mode: api.PublishIngress},
			tcp(9100, 9100, api.PublishHost),
		},
		Backends: []api.NetBackend{
			{TaskID: idTaskMetric2, NodeID: "n2", Addr: "10.64.2.30"},
			{TaskID: idTaskMetric3, NodeID: "n3", Addr: "10.64.3.30"},
		}})
	return v
}

func TestBuildPortsGolden(t *testing.T) {
	golden(t, "ports", mustBuild(t, portsView(), Options{}).String())
}

// service returns the view's service of that ID.
func service(v *api.NetView, id string) *api.NetService {
	for i := range v.Services {
		if v.Services[i].ID == id {
			return &v.Services[i]
		}
	}
	panic("no service " + id)
}

func TestBuildPorts(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(v *api.NetView)
		// want are lines the rendering must hold, not those it must not.
		want, not []string
	}{
		{name: "view", edit: func(*api.NetView) {},
			want: []string{
				"tcp . 80 : goto pub-1c7r4kd2q800-tcp-80",
				"udp . 8125 : goto pub-1e7r4kd2q800-udp-8125",
				"tcp . 9000 : goto pub-1a7r4kd2q800-tcp-9000",                                                    // host, a local backend
				"goto pbe-1a7r4kd2q800-2a9m1v0oq800-tcp-9000",                                                    // ...only that one
				"meta l4proto tcp dnat ip to 10.64.1.9:5432",                                                     // host, dnsrr
				"meta l4proto udp dnat ip to 10.64.3.30:8125",                                                    // ingress to a remote backend
				"meta l4proto tcp dnat ip to 10.64.1.8:8080",                                                     // shared by 8080 and 8081
				"chain pub-1d7r4kd2q800-tcp-6379 {\n\t\tmeta l4proto tcp reject with tcp reset\n\t\treject\n\t}", // no backend
			},
			not: []string{"9100", "2b9m1v0oq800-tcp-9000"}}, // host, no local backend: not published here
		{name: "host port shared, one local", edit: func(v *api.NetView) {
			service(v, idSvcDB).Ports[0].Published = 9100
		}, want: []string{"tcp . 9100 : goto pub-1b7r4kd2q800-tcp-9100"}},
		{name: "ingress and host without local backend", edit: func(v *api.NetView) {
			service(v, idSvcCache).Ports[0].Published = 9100
		}, want: []string{"tcp . 9100 : goto pub-1d7r4kd2q800-tcp-9100"}},
		{name: "same port twice alike", edit: func(v *api.NetView) {
			s := service(v, idSvcWeb)
			s.Ports = append(s.Ports, s.Ports[0])
		}, want: []string{"tcp . 80 : goto pub-1c7r4kd2q800-tcp-80"}},
		{name: "sctp", edit: func(v *api.NetView) {
			service(v, idSvcWeb).Ports[0].Protocol = api.ProtocolSCTP
		}, want: []string{"sctp . 80 : goto pub-1c7r4kd2q800-sctp-80", "meta l4proto sctp dnat ip to 10.64.1.5:8080"}},
		{name: "no subnet yet", edit: func(v *api.NetView) {
			v.Subnet = ""
			for i := range v.Services {
				for j := range v.Services[i].Backends {
					v.Services[i].Backends[j].NodeID = "n2"
				}
			}
		}, want: []string{"tcp . 80 : goto pub-1c7r4kd2q800-tcp-80"}, not: []string{"tcp . 5432", "tcp . 9000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := portsView()
			tc.edit(v)
			s := mustBuild(t, v, Options{}).String()
			for _, w := range tc.want {
				if !strings.Contains(s, w) {
					t.Errorf("no %q in\n%s", w, s)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(s, w) {
					t.Errorf("%q in\n%s", w, s)
				}
			}
		})
	}
}

func TestBuildPortErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		edit     func(v *api.NetView)
		conflict bool
		want     []string
	}{
		{"ingress twice", func(v *api.NetView) { service(v, idSvcAPI).Ports[0].Published = 80 }, true,
			[]string{"ports: tcp 80: services shop_api (" + idSvcAPI + ") and shop_web (" + idSvcWeb + ") both publish it on node n1"}},
		{"ingress and local host", func(v *api.NetView) { service(v, idSvcCache).Ports[0].Published = 5432 }, true,
			[]string{"tcp 5432", "shop_db", "shop_cache"}},
		{"host twice, both local", func(v *api.NetView) { service(v, idSvcDB).Ports[0].Published = 9000 }, true,
			[]string{"tcp 9000", "shop_db", "shop_api"}},
		{"one service, two targets", func(v *api.NetView) {
			s := service(v, idSvcWeb)
			s.Ports = append(s.Ports, api.PortConfig{Protocol: api.ProtocolTCP, Published: 80, Target: 81})
		}, true, []string{"services: " + idSvcWeb + ": ports: tcp 80 published twice (target 81, ingress, target 8080, ingress)"}},
		{"one service, two modes", func(v *api.NetView) {
			s := service(v, idSvcWeb)
			s.Ports = append(s.Ports, api.PortConfig{Protocol: api.ProtocolTCP, Published: 80, Target: 8080, Mode: api.PublishHost})
		}, true, []string{"tcp 80 published twice (target 8080, ingress, target 8080, host)"}},
		{"published 0", func(v *api.NetView) { service(v, idSvcWeb).Ports[0].Published = 0 }, false,
			[]string{"services: " + idSvcWeb + ": ports[0]: published 0: not a port"}},
		{"published too big", func(v *api.NetView) { service(v, idSvcWeb).Ports[0].Published = 65536 }, false,
			[]string{"ports[0]: published 65536"}},
		{"target 0", func(v *api.NetView) { service(v, idSvcAPI).Ports[2].Target = 0 }, false,
			[]string{"services: " + idSvcAPI + ": ports[2]: target 0: not a port"}},
		{"protocol", func(v *api.NetView) { service(v, idSvcWeb).Ports[0].Protocol = 7 }, false,
			[]string{"ports[0]: protocol 7"}},
		{"mode", func(v *api.NetView) { service(v, idSvcWeb).Ports[0].Mode = 9 }, false,
			[]string{"ports[0]: mode 9"}},
		{"bad backend", func(v *api.NetView) { service(v, idSvcMetrics).Backends[0].Addr = "x" }, false,
			[]string{"services: " + idSvcMetrics + ": backends: " + idTaskMetric2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := portsView()
			tc.edit(v)
			_, err := Build(v, Options{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want one with %q", err, w)
				}
			}
			if !errors.Is(err, ErrInvalidView) {
				t.Errorf("err = %v, not an ErrInvalidView", err)
			}
			if errors.Is(err, ErrPortConflict) != tc.conflict {
				t.Errorf("err = %v: errors.Is ErrPortConflict = %v, want %v", err, !tc.conflict, tc.conflict)
			}
		})
	}
}

// The order of services, backends and ports does not matter.
func TestBuildPortsDeterministic(t *testing.T) {
	want := mustBuild(t, portsView(), Options{}).String()
	rng := rand.New(rand.NewSource(1))
	for range 20 {
		v := portsView()
		rng.Shuffle(len(v.Services), func(i, j int) { v.Services[i], v.Services[j] = v.Services[j], v.Services[i] })
		for _, s := range v.Services {
			rng.Shuffle(len(s.Backends), func(i, j int) { s.Backends[i], s.Backends[j] = s.Backends[j], s.Backends[i] })
			rng.Shuffle(len(s.Ports), func(i, j int) { s.Ports[i], s.Ports[j] = s.Ports[j], s.Ports[i] })
		}
		if got := mustBuild(t, v, Options{}).String(); got != want {
			t.Fatalf("shuffled view renders differently:\n%s", cmp.Diff(want, got))
		}
	}
	v := portsView()
	mustBuild(t, v, Options{})
	if d := cmp.Diff(portsView(), v); d != "" {
		t.Errorf("Build modified the view:\n%s", d)
	}
}

// A conflict's error is the same whatever the order of the view.
func TestBuildPortConflictDeterministic(t *testing.T) {
	var first string
	for i := range 10 {
		v := portsView()
		service(v, idSvcAPI).Ports[0].Published = 80
		for j := 0; j < i; j++ {
			v.Services = append(v.Services[1:], v.Services[0])
		}
		_, err := Build(v, Options{})
		if err == nil {
			t.Fatal("no error")
		}
		if i == 0 {
			first = err.Error()
		} else if err.Error() != first {
			t.Fatalf("err = %v, want %v", err, first)
		}
	}
}

// A backend change touches only the chains of the service's ports and
// VIP, and the ports map only when a host port comes or goes.
func TestDiffPortsGolden(t *testing.T) {
	base := mustBuild(t, portsView(), Options{})
	for _, tc := range []struct {
		name string
		edit func(v *api.NetView)
	}{
		{"remote-backend-removed", func(v *api.NetView) { // api loses the task on n2
			s := service(v, idSvcAPI)
			s.Backends = append(s.Backends[:1:1], s.Backends[2:]...)
		}},
		{"host-port-gone", func(v *api.NetView) { service(v, idSvcDB).Backends = nil }},
		{"host-port-comes", func(v *api.NetView) {
			s := service(v, idSvcMetrics)
			s.Backends = append(s.Backends, api.NetBackend{TaskID: idTaskMon, NodeID: "n1", Addr: "10.64.1.30"})
		}},
		{"ingress-backends-gone", func(v *api.NetView) { service(v, idSvcMetrics).Backends = nil }},
		{"port-unpublished", func(v *api.NetView) { service(v, idSvcWeb).Ports = nil }},
		{"target-changed", func(v *api.NetView) { service(v, idSvcWeb).Ports[0].Target = 9090 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := portsView()
			tc.edit(v)
			p := diff(base, mustBuild(t, v, Options{}))
			if p.full != nil {
				t.Fatal("plan replaces the whole table")
			}
			golden(t, "diff-ports-"+tc.name, p.String())
		})
	}
	if p := diff(base, mustBuild(t, portsView(), Options{})); !p.empty() {
		t.Errorf("plan for an equal ruleset:\n%s", p)
	}
}
