package containerd

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
)

// freePort is a tcp and udp port nothing listens on as the test starts.
func freePort(t *testing.T) uint32 {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp4", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if c, err := net.ListenPacket("udp4", l.Addr().String()); err == nil {
			_ = c.Close()
			return uint32(port)
		}
	}
	t.Fatal("no port free for tcp and udp")
	return 0
}

// bindable reports whether a program could listen on p at 127.0.0.1.
func bindable(t *testing.T, p hostPort) bool {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", p.portString())
	if p.proto == api.ProtocolUDP {
		c, err := net.ListenPacket("udp4", addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}
	l, err := net.Listen("tcp4", addr)
	if err == nil {
		_ = l.Close()
	}
	return err == nil
}

func TestPortHolds(t *testing.T) {
	var h portHolds
	defer h.releaseAll()
	port := freePort(t)
	ps := []hostPort{{api.ProtocolTCP, port}, {api.ProtocolUDP, port}}

	if err := h.hold("a", ps, true); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if bindable(t, p) {
			t.Errorf("%s: another program could listen on it while task a holds it", p)
		}
	}
	// A replacement on this node takes the ports over: the one it
	// replaces no longer frees them.
	if err := h.hold("b", ps, true); err != nil {
		t.Fatalf("replacement: %v", err)
	}
	h.release("a")
	if bindable(t, ps[0]) {
		t.Error("released by the replaced task, not by its replacement")
	}
	// A task found running does not take them from the one that has them.
	if err := h.hold("c", ps, false); err != nil {
		t.Fatal(err)
	}
	h.release("c")
	if bindable(t, ps[0]) {
		t.Error("task c released task b's ports")
	}
	h.release("b")
	for _, p := range ps {
		if !bindable(t, p) {
			t.Errorf("%s still held after its task released it", p)
		}
	}

	// A port another program listens on, on any address, fails the task
	// and leaves none of its other ports held.
	other := freePort(t)
	l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", hostPort{api.ProtocolTCP, other}.portString()))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = h.hold("d", []hostPort{{api.ProtocolUDP, port}, {api.ProtocolTCP, other}}, true)
	if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), "host port "+hostPort{api.ProtocolTCP, other}.String()+" is in use on this node") {
		t.Errorf("hold of a port in use: %v", err)
	}
	if !bindable(t, hostPort{api.ProtocolUDP, port}) {
		t.Error("a failed hold kept the port it bound before the failure")
	}
}

func TestHostPortsLabel(t *testing.T) {
	task := &api.Task{Endpoint: &api.EndpointSpec{Ports: []api.PortConfig{
		{Protocol: api.ProtocolTCP, Target: 80, Published: 8080, Mode: api.PublishIngress},
		{Protocol: api.ProtocolTCP, Target: 80, Published: 8081, Mode: api.PublishHost},
		{Protocol: api.ProtocolUDP, Target: 53, Published: 5353, Mode: api.PublishHost},
	}}}
	ps := taskHostPorts(task)
	label := formatHostPorts(ps)
	if label != "tcp/8081,udp/5353" {
		t.Errorf("label %q", label)
	}
	if got := parseHostPorts(label); len(got) != 2 || got[0] != ps[0] || got[1] != ps[1] {
		t.Errorf("parse(%q) = %v, want %v", label, got, ps)
	}
}
