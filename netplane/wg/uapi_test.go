package wg

import (
	"encoding/hex"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func hexKey(k wgtypes.Key) string { return hex.EncodeToString(k[:]) }

func TestUAPISetDevice(t *testing.T) {
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	port := 51820
	got := string(uapiSet(wgtypes.Config{PrivateKey: &priv, ListenPort: &port}))
	if want := "private_key=" + hexKey(priv) + "\nlisten_port=51820\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestUAPIPeers(t *testing.T) {
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	a, b := testKey(t, 2), testKey(t, 3)
	in := "private_key=" + hexKey(priv) + "\nlisten_port=51820\n" +
		"public_key=" + hexKey(a) + "\npreshared_key=" + hexKey(priv) + "\nprotocol_version=1\nendpoint=192.0.2.2:51820\n" +
		"last_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\ntx_bytes=100\nrx_bytes=200\n" +
		"persistent_keepalive_interval=25\nallowed_ip=10.64.2.0/24\nallowed_ip=10.99.0.0/16\n" +
		"public_key=" + hexKey(b) + "\nprotocol_version=1\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\n" +
		"tx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=0\nerrno=0\n\n"
	got, err := uapiPeers(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []wgtypes.Peer{
		{PublicKey: a, Endpoint: &net.UDPAddr{IP: net.IPv4(192, 0, 2, 2).To4(), Port: 51820},
			LastHandshakeTime: time.Unix(1700000000, 5), TransmitBytes: 100, ReceiveBytes: 200,
			PersistentKeepaliveInterval: 25 * time.Second, ProtocolVersion: 1,
			AllowedIPs: []net.IPNet{ipNet(pfx("10.64.2.0/24")), ipNet(pfx("10.99.0.0/16"))}},
		{PublicKey: b, ProtocolVersion: 1},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("peers (-want +got):\n%s", d)
	}

	// Errors name the line's key, never its value.
	for _, bad := range []string{
		"public_key=" + hexKey(a) + "\nendpoint=" + hexKey(priv) + "\n",
		"public_key=" + hexKey(priv)[:20] + "\n",
		"public_key=" + hexKey(a) + "\nrx_bytes=" + hexKey(priv) + "\n",
	} {
		_, err := uapiPeers(strings.NewReader(bad))
		if err == nil {
			t.Fatalf("%q parsed", bad)
		}
		if strings.Contains(err.Error(), hexKey(priv)[:20]) {
			t.Fatalf("error quotes its input: %v", err)
		}
	}
}
