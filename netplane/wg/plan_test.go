package wg

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// testKey returns a fixed key: the public key of private key {0, n, 0, ...}.
func testKey(t testing.TB, n byte) wgtypes.Key {
	t.Helper()
	var priv wgtypes.Key
	priv[1] = n // not byte 0: clamping clears its low bits
	k, err := wgtypes.NewKey(priv[:])
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey()
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestDesired(t *testing.T) {
	self, a, b := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	local := netip.MustParseAddr("10.64.1.1")
	tests := []struct {
		name    string
		local   netip.Addr
		peers   []Peer
		wantErr string
	}{
		{name: "no peers", local: local},
		{name: "two peers", local: local, peers: []Peer{
			{PublicKey: a.String(), Endpoint: "192.0.2.2:51820", Subnet: pfx("10.64.2.0/24")},
			{PublicKey: b.String(), Endpoint: "192.0.2.3:51820", Subnet: pfx("10.64.3.0/24")},
		}},
		{name: "no local", wantErr: "local address"},
		{name: "bad key", local: local, peers: []Peer{{PublicKey: "nope", Endpoint: "192.0.2.2:1", Subnet: pfx("10.64.2.0/24")}},
			wantErr: "public key"},
		{name: "own key", local: local, peers: []Peer{{PublicKey: self.String(), Endpoint: "192.0.2.2:1", Subnet: pfx("10.64.2.0/24")}},
			wantErr: "own key"},
		{name: "twice", local: local, peers: []Peer{
			{PublicKey: a.String(), Endpoint: "192.0.2.2:1", Subnet: pfx("10.64.2.0/24")},
			{PublicKey: a.String(), Endpoint: "192.0.2.3:1", Subnet: pfx("10.64.3.0/24")},
		}, wantErr: "listed twice"},
		{name: "same subnet", local: local, peers: []Peer{
			{PublicKey: a.String(), Endpoint: "192.0.2.2:1", Subnet: pfx("10.64.2.0/24")},
			{PublicKey: b.String(), Endpoint: "192.0.2.3:1", Subnet: pfx("10.64.2.0/24")},
		}, wantErr: "another peer's"},
		{name: "no port", local: local, peers: []Peer{{PublicKey: a.String(), Endpoint: "192.0.2.2", Subnet: pfx("10.64.2.0/24")}},
			wantErr: "endpoint"},
		{name: "no subnet", local: local, peers: []Peer{{PublicKey: a.String(), Endpoint: "192.0.2.2:1"}}, wantErr: "no subnet"},
		{name: "family", local: local, peers: []Peer{{PublicKey: a.String(), Endpoint: "192.0.2.2:1", Subnet: pfx("fd00::/64")}},
			wantErr: "family"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := desired(tt.local, tt.peers, self)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Peers) != len(tt.peers) || len(s.Routes) != len(tt.peers) {
				t.Fatalf("%d peers and %d routes, want %d each", len(s.Peers), len(s.Routes), len(tt.peers))
			}
		})
	}

	// A subnet given unmasked is masked; the order of peers does not
	// matter.
	p1 := []Peer{
		{PublicKey: a.String(), Endpoint: "192.0.2.2:51820", Subnet: pfx("10.64.2.9/24")},
		{PublicKey: b.String(), Endpoint: "192.0.2.3:51820", Subnet: pfx("10.64.3.0/24")},
	}
	p2 := []Peer{p1[1], {PublicKey: a.String(), Endpoint: "192.0.2.2:51820", Subnet: pfx("10.64.2.0/24")}}
	s1, err1 := desired(local, p1, self)
	s2, err2 := desired(local, p2, self)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if !s1.equal(s2) {
		t.Fatal("the same peers in another order are another state")
	}
}

func TestPlan(t *testing.T) {
	self := testKey(t, 1)
	// Plans list peers by key: name them in that order.
	ks := []wgtypes.Key{testKey(t, 2), testKey(t, 3), testKey(t, 4)}
	slices.SortFunc(ks, compareKeys)
	a, b, c := ks[0], ks[1], ks[2]
	local := netip.MustParseAddr("10.64.1.1")
	pa := Peer{PublicKey: a.String(), Endpoint: "192.0.2.2:51820", Subnet: pfx("10.64.2.0/24")}
	pb := Peer{PublicKey: b.String(), Endpoint: "192.0.2.3:51820", Subnet: pfx("10.64.3.0/24")}
	pc := Peer{PublicKey: c.String(), Endpoint: "192.0.2.4:51820", Subnet: pfx("10.64.4.0/24")}
	mk := func(local netip.Addr, peers ...Peer) *state {
		t.Helper()
		s, err := desired(local, peers, self)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	empty := &state{}
	moved := pb
	moved.Endpoint = "192.0.2.33:51821"
	renumbered := pb
	renumbered.Subnet = pfx("10.64.33.0/24")
	// A device that holds more than gitorc asked: another address, a
	// second allowed IP, no keepalive, a stale route of ours.
	messy := mk(local, pa)
	messy.Addrs = append(messy.Addrs, pfx("192.0.2.99/32"))
	messy.Peers[a] = peerState{Endpoint: messy.Peers[a].Endpoint, AllowedIPs: []netip.Prefix{pfx("10.64.2.0/24"), pfx("10.99.0.0/16")}}
	messy.Routes[pfx("10.64.9.0/24")] = local

	tests := []struct {
		name       string
		have, want *state
		plan       string
	}{
		{name: "same", have: mk(local, pa, pb), want: mk(local, pb, pa), plan: ""},
		{name: "fresh", have: empty, want: mk(local, pa, pb), plan: `addr add 10.64.1.1/32
peer add ` + a.String() + ` endpoint 192.0.2.2:51820 allowed-ips 10.64.2.0/24 keepalive 25s
peer add ` + b.String() + ` endpoint 192.0.2.3:51820 allowed-ips 10.64.3.0/24 keepalive 25s
route replace 10.64.2.0/24 src 10.64.1.1
route replace 10.64.3.0/24 src 10.64.1.1
`},
		{name: "remove one", have: mk(local, pa, pb), want: mk(local, pa), plan: `peer remove ` + b.String() + `
route del 10.64.3.0/24
`},
		{name: "add one", have: mk(local, pa), want: mk(local, pa, pc), plan: `peer add ` + c.String() + ` endpoint 192.0.2.4:51820 allowed-ips 10.64.4.0/24 keepalive 25s
route replace 10.64.4.0/24 src 10.64.1.1
`},
		{name: "endpoint moved", have: mk(local, pa, pb), want: mk(local, pa, moved), plan: `peer update ` + b.String() + ` endpoint 192.0.2.33:51821
`},
		{name: "subnet changed", have: mk(local, pa, pb), want: mk(local, pa, renumbered), plan: `peer update ` + b.String() + ` allowed-ips 10.64.33.0/24
route replace 10.64.33.0/24 src 10.64.1.1
route del 10.64.3.0/24
`},
		{name: "new gateway", have: mk(local, pa), want: mk(netip.MustParseAddr("10.64.7.1"), pa), plan: `addr add 10.64.7.1/32
route replace 10.64.2.0/24 src 10.64.7.1
addr del 10.64.1.1/32
`},
		{name: "all gone", have: mk(local, pa, pb), want: mk(local), plan: `peer remove ` + a.String() + `
peer remove ` + b.String() + `
route del 10.64.2.0/24
route del 10.64.3.0/24
`},
		{name: "messy", have: messy, want: mk(local, pa), plan: `peer update ` + a.String() + ` allowed-ips 10.64.2.0/24 keepalive 25s
route del 10.64.9.0/24
addr del 192.0.2.99/32
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.have.Peers == nil {
				tt.have.Peers = map[wgtypes.Key]peerState{}
			}
			p := makePlan(tt.have, tt.want)
			if d := cmp.Diff(tt.plan, p.String()); d != "" {
				t.Fatalf("plan (-want +got):\n%s", d)
			}
			if p.empty() != (tt.plan == "") {
				t.Fatalf("empty() = %v for plan %q", p.empty(), tt.plan)
			}
		})
	}
}

func TestPeerConfigs(t *testing.T) {
	a, b, c := testKey(t, 2), testKey(t, 3), testKey(t, 4)
	p := &plan{Peers: []peerChange{
		{Op: peerAdd, Key: a, Peer: peerState{Endpoint: netip.MustParseAddrPort("192.0.2.2:51820"),
			AllowedIPs: []netip.Prefix{pfx("10.64.2.0/24")}, Keepalive: 25 * time.Second},
			SetEndpoint: true, SetAllowedIPs: true, SetKeepalive: true},
		{Op: peerUpdate, Key: b, Peer: peerState{Endpoint: netip.MustParseAddrPort("192.0.2.3:1")}, SetEndpoint: true},
		{Op: peerRemove, Key: c},
	}}
	got := string(uapiSet(wgtypes.Config{Peers: p.peerConfigs()}))
	want := "public_key=" + hexKey(a) + "\nendpoint=192.0.2.2:51820\npersistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=10.64.2.0/24\n" +
		"public_key=" + hexKey(b) + "\nupdate_only=true\nendpoint=192.0.2.3:1\n" +
		"public_key=" + hexKey(c) + "\nremove=true\n"
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("uapi (-want +got):\n%s", d)
	}
	if strings.Contains(got, "replace_peers") {
		t.Fatal("a plan replaces all peers")
	}
}

func TestDeferKeepalives(t *testing.T) {
	ks := []wgtypes.Key{testKey(t, 2), testKey(t, 3), testKey(t, 4)}
	slices.SortFunc(ks, compareKeys)
	lo, self, hi := ks[0], ks[1], ks[2]
	local := netip.MustParseAddr("10.64.1.1")
	want, err := desired(local, []Peer{
		{PublicKey: lo.String(), Endpoint: "192.0.2.2:51820", Subnet: pfx("10.64.2.0/24")},
		{PublicKey: hi.String(), Endpoint: "192.0.2.3:51820", Subnet: pfx("10.64.3.0/24")},
	}, self)
	if err != nil {
		t.Fatal(err)
	}
	// Both new: the peer with the lower key initiates, so its keepalive
	// is held back here; the one with the higher key waits for this
	// node's.
	p := makePlan(&state{}, want)
	held := p.deferKeepalives(self, nil)
	if !slices.Equal(held, []wgtypes.Key{lo}) {
		t.Fatalf("held back %v, want only the lower key %v", held, lo)
	}
	if d := cmp.Diff("addr add 10.64.1.1/32\n"+
		"peer add "+lo.String()+" endpoint 192.0.2.2:51820 allowed-ips 10.64.2.0/24\n"+
		"peer add "+hi.String()+" endpoint 192.0.2.3:51820 allowed-ips 10.64.3.0/24 keepalive 25s\n"+
		"route replace 10.64.2.0/24 src 10.64.1.1\nroute replace 10.64.3.0/24 src 10.64.1.1\n", p.String()); d != "" {
		t.Fatalf("plan (-want +got):\n%s", d)
	}

	// While held back, a Reconfig does not turn it on; the timer's
	// apply (no holding) does.
	have := want.clone()
	have.Peers[lo] = peerState{Endpoint: have.Peers[lo].Endpoint, AllowedIPs: have.Peers[lo].AllowedIPs}
	pending := map[wgtypes.Key]time.Time{lo: {}}
	p = makePlan(have, want)
	if held := p.deferKeepalives(self, pending); len(held) != 1 || !p.empty() {
		t.Fatalf("pending keepalive: held %v, plan %q, want it held and nothing to do", held, p)
	}
	if got, want := makePlan(have, want).String(), "peer update "+lo.String()+" keepalive 25s\n"; got != want {
		t.Fatalf("plan without holding: %q, want %q", got, want)
	}
}
