package harness

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
)

// Isolation is a host cut off from other hosts of its network by nftables
// rules of its own (a bridge-family table on the forward hook): IP and ARP
// between them are dropped both ways, while the gateway (the root
// namespace: a registry, a Git server) stays reachable and the host's
// link stays up. Unlike Partition, several isolations can hold at once,
// each in its own table; Heal removes one, Network.Close all that are left.
type Isolation struct {
	nw    *Network
	table string
	Host  *Host
	From  []*Host

	once sync.Once
}

// Isolate cuts h off from the hosts from (every other host of the network
// when from is empty) until Heal.
func (nw *Network) Isolate(h *Host, from ...*Host) *Isolation {
	nw.t.Helper()
	if len(from) == 0 {
		for _, o := range nw.Hosts {
			if o != h {
				from = append(from, o)
			}
		}
	}
	nw.mu.Lock()
	nw.isolations++
	iso := &Isolation{nw: nw, table: fmt.Sprintf("gtrc%si%d", nw.id, nw.isolations), Host: h, From: from}
	nw.isolated = append(nw.isolated, iso)
	nw.mu.Unlock()

	var rules strings.Builder
	fmt.Fprintf(&rules, "table bridge %s {\n chain forward {\n  type filter hook forward priority -10; policy accept;\n", iso.table)
	for _, o := range from {
		for _, pair := range [][2]*Host{{h, o}, {o, h}} {
			fmt.Fprintf(&rules, "  ether type ip ip saddr %s ip daddr %s drop\n", pair[0].Addr, pair[1].Addr)
			fmt.Fprintf(&rules, "  ether type arp arp saddr ip %s arp daddr ip %s drop\n", pair[0].Addr, pair[1].Addr)
		}
	}
	rules.WriteString(" }\n}\n")
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		nw.t.Fatalf("nft isolate %s: %v: %s", h.Name, err, out)
	}
	return iso
}

// Heal removes the isolation's rules; healing twice is a no-op.
func (iso *Isolation) Heal() {
	iso.once.Do(func() {
		_, _ = run("nft", "delete", "table", "bridge", iso.table)
		iso.nw.mu.Lock()
		defer iso.nw.mu.Unlock()
		for i, o := range iso.nw.isolated {
			if o == iso {
				iso.nw.isolated = append(iso.nw.isolated[:i], iso.nw.isolated[i+1:]...)
				break
			}
		}
	})
}

// healIsolations removes every isolation left.
func (nw *Network) healIsolations() {
	nw.mu.Lock()
	left := append([]*Isolation(nil), nw.isolated...)
	nw.mu.Unlock()
	for _, iso := range left {
		iso.Heal()
	}
}
