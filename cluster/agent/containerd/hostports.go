package containerd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/gitorc/gitorc/cluster/api"
)

// labelHostPorts lists a task's host-mode published ports ("tcp/8081,
// udp/5353"), so that a restarted executor holds them again.
const labelHostPorts = "gitorc.host-ports"

// hostPort is a protocol and port a task publishes on its node.
type hostPort struct {
	proto api.Protocol
	port  uint32
}

func (p hostPort) String() string { return fmt.Sprintf("%d/%s", p.port, p.proto) }

func (p hostPort) portString() string { return strconv.FormatUint(uint64(p.port), 10) }

// taskHostPorts are the host-mode published ports of a task, as its
// service's endpoint had them when the task was made.
func taskHostPorts(t *api.Task) []hostPort {
	if t.Endpoint == nil {
		return nil
	}
	var out []hostPort
	for _, p := range t.Endpoint.Ports {
		if p.Mode == api.PublishHost && p.Published != 0 {
			out = append(out, hostPort{p.Protocol, p.Published})
		}
	}
	return out
}

func formatHostPorts(ps []hostPort) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.proto.String() + "/" + p.portString()
	}
	return strings.Join(s, ",")
}

func parseHostPorts(s string) []hostPort {
	var out []hostPort
	for f := range strings.SplitSeq(s, ",") {
		proto, port, ok := strings.Cut(f, "/")
		n, err := strconv.ParseUint(port, 10, 16)
		if !ok || err != nil {
			continue
		}
		switch proto {
		case api.ProtocolTCP.String():
			out = append(out, hostPort{api.ProtocolTCP, uint32(n)})
		case api.ProtocolUDP.String():
			out = append(out, hostPort{api.ProtocolUDP, uint32(n)})
		}
	}
	return out
}

// portHolds keeps a socket bound on every address of the node for each
// host-mode port of the tasks that run here, as docker-proxy does for
// docker's published ports. The network plane answers those ports by
// DNAT, before any socket sees a packet; the socket is there so that a
// port another program listens on fails the task that wants it, saying
// so, instead of silently taking that program's connections, and so that
// no program takes the port while the task has it. Between tasks of this
// node a port changes hands without a new bind: the scheduler, not the
// kernel, decides which task of the cluster has a node's port (a
// replacement may be placed before the task it replaces is removed).
type portHolds struct {
	mu    sync.Mutex
	holds map[hostPort]*portHold
}

type portHold struct {
	owner string // task ID
	sock  io.Closer
}

// hold binds ps for task. A port another task of this node holds changes
// owner when take is set, and stays its when not (a task found running
// after a restart does not take a port from its replacement). On
// failure it holds none of the ports it bound for this call.
func (h *portHolds) hold(task string, ps []hostPort, take bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.holds == nil {
		h.holds = map[hostPort]*portHold{}
	}
	var bound []hostPort
	for _, p := range ps {
		if ph, ok := h.holds[p]; ok {
			if take {
				ph.owner = task
			}
			continue
		}
		sock, err := bindHostPort(p)
		if err != nil {
			for _, b := range bound {
				_ = h.holds[b].sock.Close()
				delete(h.holds, b)
			}
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("%w: host port %s is in use on this node by a program gitorc does not run: publish another port, or stop that program", ErrInvalidSpec, p)
			}
			return fmt.Errorf("hold host port %s: %w", p, err)
		}
		if sock != nil {
			h.holds[p] = &portHold{owner: task, sock: sock}
			bound = append(bound, p)
		}
	}
	return nil
}

// release closes the sockets task holds.
func (h *portHolds) release(task string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for p, ph := range h.holds {
		if ph.owner == task {
			_ = ph.sock.Close()
			delete(h.holds, p)
		}
	}
}

// releaseAll closes every socket (the executor closes).
func (h *portHolds) releaseAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for p, ph := range h.holds {
		_ = ph.sock.Close()
		delete(h.holds, p)
	}
}

// bindHostPort binds p on every IPv4 address of the node (tasks have no
// IPv6 address, and the plane publishes IPv4 only). Nothing is sent to
// it but connections to a task gateway's address, which the plane does
// not publish on: a tcp one is closed at once, a datagram is dropped.
func bindHostPort(p hostPort) (io.Closer, error) {
	addr := net.JoinHostPort("0.0.0.0", p.portString())
	switch p.proto {
	case api.ProtocolTCP:
		l, err := net.Listen("tcp4", addr)
		if err != nil {
			return nil, err
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				_ = c.Close()
			}
		}()
		return l, nil
	case api.ProtocolUDP:
		c, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return nil, err
		}
		return c, nil
	default:
		return nil, nil // sctp: the plane publishes it, nothing holds it
	}
}
