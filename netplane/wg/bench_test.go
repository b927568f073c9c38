package wg

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BenchmarkThroughput_Root measures one TCP stream (iperf3 -t 3) from node
// 1 to node 2, over the veth underlay bare and over the userspace
// WireGuard overlay (gateway to gateway), and reports both and their
// ratio (target: overlay ≥ 0.15 of bare). Both wireguard-go devices run
// in this one process, sharing its CPUs with the two iperf3 processes.
// Run with
// `go test ./netplane/wg -run '^$' -bench Throughput -benchtime 1x`.
func BenchmarkThroughput_Root(b *testing.B) {
	needRoot(b)
	if _, err := exec.LookPath("iperf3"); err != nil {
		b.Skip("needs iperf3")
	}
	n1, n2 := twoNodes(b, true)
	connect(b, n1, n2)
	for _, n := range []*node{n1, n2} {
		if u, ok := n.dev.impl.(*userspace); !ok || !u.offloads {
			b.Logf("%s: TUN offloads are off", n.name)
		}
	}
	var bare, overlay iperfResult
	for b.Loop() {
		bare = iperf(b, n1, n2, n1.underlay, n2.underlay)
		overlay = iperf(b, n1, n2, n1.local, n2.local)
	}
	b.ReportMetric(bare.gbps(), "bare-Gbit/s")
	b.ReportMetric(overlay.gbps(), "overlay-Gbit/s")
	b.ReportMetric(overlay.bps/bare.bps, "ratio")
	b.Logf("GOMAXPROCS %d; bare veth %.2f Gbit/s (%d retransmits, sender cpu %.0f%%, receiver %.0f%%); "+
		"overlay %.2f Gbit/s (%d retransmits, sender cpu %.0f%%, receiver %.0f%%; wireguard-go's cpu is in neither); ratio %.3f",
		runtime.GOMAXPROCS(0), bare.gbps(), bare.retransmits, bare.cpuSender, bare.cpuReceiver,
		overlay.gbps(), overlay.retransmits, overlay.cpuSender, overlay.cpuReceiver, overlay.bps/bare.bps)
}

type iperfResult struct {
	bps                    float64
	retransmits            int
	cpuSender, cpuReceiver float64
}

func (r iperfResult) gbps() float64 { return r.bps / 1e9 }

// iperf runs an iperf3 server on to (in n2's namespace, one test) and a
// client from src (in n1's), 3 seconds, and returns what the receiver
// got.
func iperf(b *testing.B, n1, n2 *node, src, dst netip.Addr) iperfResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const port = "5201"
	srv := exec.CommandContext(ctx, "nsenter", "--net="+n2.ns.Path, "iperf3", "-s", "-1", "-B", dst.String(), "-p", port)
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		cancel()
		_ = srv.Wait()
	}()
	type report struct {
		Error string `json:"error"`
		End   struct {
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			CPU struct {
				Host   float64 `json:"host_total"`
				Remote float64 `json:"remote_total"`
			} `json:"cpu_utilization_percent"`
		} `json:"end"`
	}
	var (
		r   report
		out []byte
	)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		r = report{}
		out, err = exec.CommandContext(ctx, "nsenter", "--net="+n1.ns.Path, "iperf3", "-c", dst.String(), "-B", src.String(),
			"-p", port, "-t", "3", "-J").Output()
		if jerr := json.Unmarshal(out, &r); jerr != nil && err == nil {
			err = jerr
		}
		if err == nil && r.Error == "" {
			break
		}
		// The server may not listen yet: it refuses, and a refused client
		// does not use up its one test.
		if !strings.Contains(r.Error, "refused") || time.Now().After(deadline) {
			cancel()
			werr := srv.Wait()
			b.Fatalf("iperf3 %s to %s: %v %s\n%s\nserver: %v\n%s", src, dst, err, r.Error, out, werr, srvOut.String())
		}
		time.Sleep(50 * time.Millisecond) // polling, with the deadline above
	}
	if r.End.SumReceived.BitsPerSecond == 0 {
		b.Fatal(fmt.Errorf("iperf3 %s to %s: nothing received\n%s", src, dst, out))
	}
	return iperfResult{bps: r.End.SumReceived.BitsPerSecond, retransmits: r.End.SumSent.Retransmits,
		cpuSender: r.End.CPU.Host, cpuReceiver: r.End.CPU.Remote}
}
