package node

import (
	"bufio"
	"net"
	"net/netip"
	"os"
	"strings"
)

// hostResolvers reads the nameservers of a resolv.conf, as host:53.
// Loopback resolvers (systemd-resolved's 127.0.0.53) work: the node's DNS
// server forwards from the host's network namespace.
func hostResolvers(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			if a, err := netip.ParseAddr(fields[1]); err == nil && a.Is4() {
				out = append(out, net.JoinHostPort(a.String(), "53"))
			}
		}
	}
	return out, sc.Err()
}
