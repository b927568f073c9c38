package wg

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// wireguard-go is configured and read through its UAPI text protocol
// (https://www.wireguard.com/xplatform/#configuration-protocol), which
// carries keys in hex. These functions translate wgctrl's types, so that
// the kernel and the userspace implementation take the same ones.

// uapiSet renders a configuration as an IpcSet request. The result holds
// the private key when c does: callers clear it after use and never show
// it.
func uapiSet(c wgtypes.Config) []byte {
	var b bytes.Buffer
	if c.PrivateKey != nil {
		b.WriteString("private_key=" + hex.EncodeToString(c.PrivateKey[:]) + "\n")
	}
	if c.ListenPort != nil {
		fmt.Fprintf(&b, "listen_port=%d\n", *c.ListenPort)
	}
	if c.FirewallMark != nil {
		fmt.Fprintf(&b, "fwmark=%d\n", *c.FirewallMark)
	}
	if c.ReplacePeers {
		b.WriteString("replace_peers=true\n")
	}
	for _, p := range c.Peers {
		b.WriteString("public_key=" + hex.EncodeToString(p.PublicKey[:]) + "\n")
		if p.Remove {
			b.WriteString("remove=true\n")
			continue
		}
		if p.UpdateOnly {
			b.WriteString("update_only=true\n")
		}
		if p.PresharedKey != nil {
			b.WriteString("preshared_key=" + hex.EncodeToString(p.PresharedKey[:]) + "\n")
		}
		if p.Endpoint != nil {
			b.WriteString("endpoint=" + p.Endpoint.AddrPort().String() + "\n")
		}
		if p.PersistentKeepaliveInterval != nil {
			fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", int(p.PersistentKeepaliveInterval.Seconds()))
		}
		if p.ReplaceAllowedIPs {
			b.WriteString("replace_allowed_ips=true\n")
		}
		for _, a := range p.AllowedIPs {
			if pf, ok := prefixOf(a); ok {
				b.WriteString("allowed_ip=" + pf.String() + "\n")
			}
		}
	}
	return b.Bytes()
}

// uapiPeers parses an IpcGet answer into its peers. Secret lines
// (private_key, preshared_key) are skipped unread; errors name the key
// of a bad line, never its value.
func uapiPeers(r io.Reader) ([]wgtypes.Peer, error) {
	var (
		peers []wgtypes.Peer
		p     *wgtypes.Peer
		hsSec int64
		hsNs  int64
	)
	flush := func() {
		if p == nil {
			return
		}
		if hsSec != 0 || hsNs != 0 {
			p.LastHandshakeTime = time.Unix(hsSec, hsNs)
		}
		peers = append(peers, *p)
		p, hsSec, hsNs = nil, 0, 0
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("uapi: line without '='")
		}
		if k == "private_key" || k == "preshared_key" {
			continue
		}
		if k == "public_key" {
			flush()
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != wgtypes.KeyLen {
				return nil, fmt.Errorf("uapi: bad %s", k)
			}
			p = &wgtypes.Peer{PublicKey: wgtypes.Key(b)}
			continue
		}
		if p == nil {
			continue // device-wide: listen_port, fwmark, errno
		}
		var err error
		switch k {
		case "endpoint":
			var ap netip.AddrPort
			if ap, err = netip.ParseAddrPort(v); err == nil {
				p.Endpoint = net.UDPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
			}
		case "allowed_ip":
			var pf netip.Prefix
			if pf, err = netip.ParsePrefix(v); err == nil {
				p.AllowedIPs = append(p.AllowedIPs, ipNet(pf))
			}
		case "last_handshake_time_sec":
			hsSec, err = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			hsNs, err = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			p.ReceiveBytes, err = strconv.ParseInt(v, 10, 64)
		case "tx_bytes":
			p.TransmitBytes, err = strconv.ParseInt(v, 10, 64)
		case "persistent_keepalive_interval":
			var s int64
			s, err = strconv.ParseInt(v, 10, 64)
			p.PersistentKeepaliveInterval = time.Duration(s) * time.Second
		case "protocol_version":
			p.ProtocolVersion, err = strconv.Atoi(v)
		}
		if err != nil {
			return nil, fmt.Errorf("uapi: bad %s", k)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("uapi: %w", err)
	}
	flush()
	return peers, nil
}
