package nft

import (
	"errors"
	"flag"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gitorc/gitorc/cluster/api"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// IDs as the store makes them (26 characters of base32hex).
const (
	idNetFront = "0c5h2ml0q8000p3k9ss0kq1e2g"
	idNetBack  = "0d5h2ml0q8000p3k9ss0kq1e2g"
	idNetMon   = "0e5h2ml0q8000p3k9ss0kq1e2g"
	idSvcAPI   = "1a7r4kd2q8000p3k9ss0kq1e2g"
	idSvcDB    = "1b7r4kd2q8000p3k9ss0kq1e2g"
	idSvcWeb   = "1c7r4kd2q8000p3k9ss0kq1e2g"
	idSvcCache = "1d7r4kd2q8000p3k9ss0kq1e2g"
	idTaskAPI1 = "2a9m1v0oq8000p3k9ss0kq1e2g"
	idTaskAPI2 = "2b9m1v0oq8000p3k9ss0kq1e2g"
	idTaskAPI3 = "2c9m1v0oq8000p3k9ss0kq1e2g"
	idTaskDB   = "2d9m1v0oq8000p3k9ss0kq1e2g"
	idTaskWeb  = "2e9m1v0oq8000p3k9ss0kq1e2g"
	idTaskMon  = "2f9m1v0oq8000p3k9ss0kq1e2g"
)

// shopView is node n1's view of examples/shop-like stack: networks front
// and back (internal), plus mon; api (vip, 3 backends on n1, n2, n3), db
// (dnsrr), web (vip, one local backend), cache (vip, no backend); peers
// n2, n3 and n4 (no subnet yet).
func shopView() *api.NetView {
	return &api.NetView{
		NodeID:   "n1",
		Subnet:   "10.64.1.0/24",
		TaskPool: api.DefaultTaskPool,
		VIPPool:  api.DefaultVIPPool,
		Peers: []api.NetPeer{
			{NodeID: "n2", PublicKey: "k2", Endpoint: "192.0.2.2:51820", Subnet: "10.64.2.0/24"},
			{NodeID: "n3", PublicKey: "k3", Endpoint: "192.0.2.3:51820", Subnet: "10.64.3.0/24"},
			{NodeID: "n4", PublicKey: "k4", Endpoint: "192.0.2.4:51820"},
		},
		Networks: []api.NetNetwork{
			{ID: idNetFront, Name: "shop_front", Members: []string{"10.64.1.5", "10.64.1.8", "10.64.2.10", "10.64.3.11"}},
			{ID: idNetBack, Name: "shop_back", Internal: true, Members: []string{"10.64.1.8", "10.64.1.9", "10.64.2.10", "10.64.3.11"}},
			{ID: idNetMon, Name: "mon", Members: []string{"10.64.1.20"}},
		},
		Services: []api.NetService{
			{ID: idSvcAPI, Name: "shop_api", ShortName: "api", Mode: api.EndpointVIP, VIP: "10.96.0.10",
				Networks: []api.NetAttachment{{NetworkID: idNetFront}, {NetworkID: idNetBack, Aliases: []string{"shop-api"}}},
				Backends: []api.NetBackend{
					{TaskID: idTaskAPI1, NodeID: "n1", Addr: "10.64.1.8"},
					{TaskID: idTaskAPI2, NodeID: "n2", Addr: "10.64.2.10"},
					{TaskID: idTaskAPI3, NodeID: "n3", Addr: "10.64.3.11"},
				}},
			{ID: idSvcCache, Name: "shop_cache", ShortName: "cache", Mode: api.EndpointVIP, VIP: "10.96.0.12",
				Networks: []api.NetAttachment{{NetworkID: idNetBack}}},
			{ID: idSvcDB, Name: "shop_db", ShortName: "db", Mode: api.EndpointDNSRR,
				Networks: []api.NetAttachment{{NetworkID: idNetBack}},
				Backends: []api.NetBackend{{TaskID: idTaskDB, NodeID: "n1", Addr: "10.64.1.9"}}},
			{ID: idSvcWeb, Name: "shop_web", ShortName: "web", Mode: api.EndpointVIP, VIP: "10.96.0.11",
				Networks: []api.NetAttachment{{NetworkID: idNetFront}},
				Backends: []api.NetBackend{{TaskID: idTaskWeb, NodeID: "n1", Addr: "10.64.1.5"}}},
		},
		Tasks: []api.NetTask{
			{ID: idTaskWeb, ServiceID: idSvcWeb, Addr: "10.64.1.5", Networks: []string{idNetFront}},
			{ID: idTaskAPI1, ServiceID: idSvcAPI, Addr: "10.64.1.8", Networks: []string{idNetBack, idNetFront}},
			{ID: idTaskDB, ServiceID: idSvcDB, Addr: "10.64.1.9", Networks: []string{idNetBack}},
			{ID: idTaskMon, ServiceID: "mon", Addr: "10.64.1.20", Networks: []string{idNetMon}},
		},
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./netplane/nft -update)", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s differs (-want +got; go test ./netplane/nft -update rewrites it):\n%s", path, d)
	}
}

func mustBuild(t testing.TB, v *api.NetView, o Options) *Ruleset {
	t.Helper()
	r, err := Build(v, o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestBuildGolden(t *testing.T) {
	golden(t, "shop", mustBuild(t, shopView(), Options{}).String())
}

// Edge cases, each rendered to a golden file of its name.
func TestBuildEdges(t *testing.T) {
	pools := func(v *api.NetView) *api.NetView {
		v.TaskPool, v.VIPPool = api.DefaultTaskPool, api.DefaultVIPPool
		return v
	}
	for _, tc := range []struct {
		name string
		v    *api.NetView
		o    Options
		// want are lines the rendering must hold, besides the golden file.
		want []string
	}{
		{name: "empty", v: pools(&api.NetView{NodeID: "n1"}),
			want: []string{"ip saddr @tasks-confined goto reject-admin"}},
		{name: "nosubnet", v: pools(&api.NetView{NodeID: "n1",
			Peers:    []api.NetPeer{{NodeID: "n2", Subnet: "10.64.2.0/24"}},
			Networks: []api.NetNetwork{{ID: idNetFront, Name: "front", Members: []string{"10.64.2.10"}}},
			Services: []api.NetService{{ID: idSvcAPI, Name: "api", VIP: "10.96.0.10",
				Backends: []api.NetBackend{{TaskID: idTaskAPI2, NodeID: "n2", Addr: "10.64.2.10"}}}},
		}), want: []string{"elements = { 10.64.2.1 }", "goto be-1a7r4kd2q800-2b9m1v0oq800"}},
		{name: "nomembers", v: pools(&api.NetView{NodeID: "n1", Subnet: "10.64.1.0/24",
			Networks: []api.NetNetwork{{ID: idNetFront, Name: "front"}, {ID: idNetBack, Name: "back", Internal: true}},
		}), want: []string{"set net-0c5h2ml0q800 {", "ip saddr @net-0d5h2ml0q800 ip daddr @net-0d5h2ml0q800 accept"}},
		{name: "options", v: pools(&api.NetView{NodeID: "n1", Subnet: "10.64.1.0/24"}),
			o: Options{Table: "gitorc_test", WGInterface: "wg0"}, want: []string{`oifname != "wg0" masquerade`, "table inet gitorc_test {"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustBuild(t, tc.v, tc.o).String()
			for _, w := range tc.want {
				if !strings.Contains(s, w) {
					t.Errorf("no %q in\n%s", w, s)
				}
			}
			golden(t, "edge-"+tc.name, s)
		})
	}
}

func TestBuildErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(v *api.NetView)
		o    Options
		want string
	}{
		{"no task pool", func(v *api.NetView) { v.TaskPool = "" }, Options{}, "task_pool"},
		{"ipv6 vip pool", func(v *api.NetView) { v.VIPPool = "fd00::/64" }, Options{}, "vip_pool"},
		{"bad subnet", func(v *api.NetView) { v.Subnet = "10.64.1.0" }, Options{}, "subnet"},
		{"bad peer", func(v *api.NetView) { v.Peers[0].Subnet = "x" }, Options{}, "peers: node n2"},
		{"bad member", func(v *api.NetView) { v.Networks[1].Members[0] = "10.64.1" }, Options{}, "networks: " + idNetBack},
		{"bad task", func(v *api.NetView) { v.Tasks[0].Addr = "" }, Options{}, "tasks: " + idTaskWeb},
		{"bad vip", func(v *api.NetView) { v.Services[0].VIP = "::1" }, Options{}, "services: " + idSvcAPI + ": vip"},
		{"bad backend", func(v *api.NetView) { v.Services[0].Backends[1].Addr = "x" }, Options{}, "backends: " + idTaskAPI2},
		{"same vip", func(v *api.NetView) { v.Services[1].VIP = v.Services[0].VIP }, Options{}, "same vip"},
		{"same network twice", func(v *api.NetView) { v.Networks[1].ID = idNetFront }, Options{}, "two sets named net-0c5h2ml0q800"},
		{"bad table", func(*api.NetView) {}, Options{Table: "1x"}, "table"},
		{"bad interface", func(*api.NetView) {}, Options{WGInterface: "a-very-long-name0"}, "wireguard interface"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := shopView()
			tc.edit(v)
			_, err := Build(v, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one about %q", err, tc.want)
			}
		})
	}
	if _, err := Build(nil, Options{}); !errors.Is(err, ErrInvalidView) {
		t.Errorf("nil view: err = %v", err)
	}
}

// The order of the view's lists does not matter; Build does not modify
// the view.
func TestBuildDeterministic(t *testing.T) {
	want := mustBuild(t, shopView(), Options{}).String()
	rng := rand.New(rand.NewSource(1))
	for range 20 {
		v := shopView()
		rng.Shuffle(len(v.Networks), func(i, j int) { v.Networks[i], v.Networks[j] = v.Networks[j], v.Networks[i] })
		rng.Shuffle(len(v.Services), func(i, j int) { v.Services[i], v.Services[j] = v.Services[j], v.Services[i] })
		rng.Shuffle(len(v.Tasks), func(i, j int) { v.Tasks[i], v.Tasks[j] = v.Tasks[j], v.Tasks[i] })
		rng.Shuffle(len(v.Peers), func(i, j int) { v.Peers[i], v.Peers[j] = v.Peers[j], v.Peers[i] })
		for _, s := range v.Services {
			rng.Shuffle(len(s.Backends), func(i, j int) { s.Backends[i], s.Backends[j] = s.Backends[j], s.Backends[i] })
		}
		for _, n := range v.Networks {
			rng.Shuffle(len(n.Members), func(i, j int) { n.Members[i], n.Members[j] = n.Members[j], n.Members[i] })
		}
		if got := mustBuild(t, v, Options{}).String(); got != want {
			t.Fatalf("shuffled view renders differently:\n%s", cmp.Diff(want, got))
		}
	}
	v := shopView()
	mustBuild(t, v, Options{})
	if d := cmp.Diff(shopView(), v); d != "" {
		t.Errorf("Build modified the view:\n%s", d)
	}
}

func TestShortNames(t *testing.T) {
	got, err := shortNames("svc-", []string{"abcdefghijklmn", "abcdefghijklxy", "short", "with space", "abcdefghijzz"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"abcdefghijklmn": "svc-abcdefghijklmn", // shares its first 12 with the next: whole
		"abcdefghijklxy": "svc-abcdefghijklxy",
		"short":          "svc-short",
		"with space":     "svc-x" + got["with space"][5:],
		"abcdefghijzz":   "svc-abcdefghijzz",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Error(d)
	}
	if n := got["with space"]; len(n) != len("svc-x")+12 || !validName(n) {
		t.Errorf("hashed name %q", n)
	}
}
