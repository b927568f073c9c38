package nodetest

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/cluster/node"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// upTimeout bounds the wait for a node's control socket and, for a
// manager, for its store to answer.
const upTimeout = 60 * time.Second

// Node is a running node.
type Node struct {
	*node.Node
	Dir    string
	Socket string
	// Report is the node's report once it served its control socket.
	Report node.Report
	log    *logBuffer
	stop   func()
}

// Client is the typed client of the node's control socket.
func (n *Node) Client() *client.Client { return client.Unix(n.Socket) }

// Stop stops the node (Cleanup does too) and fails the test when it
// stops with an error or does not stop.
func (n *Node) Stop() { n.stop() }

// FreeAddr is a loopback address with a free TCP port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Bootstrap creates a cluster whose first manager runs in dir, and waits
// until it leads. Empty Listen and RaftListen get free loopback ports.
func Bootstrap(t testing.TB, dir string, b node.Bootstrap) *Node {
	t.Helper()
	if b.Listen == "" {
		b.Listen = FreeAddr(t)
	}
	if b.RaftListen == "" {
		b.RaftListen = FreeAddr(t)
	}
	if b.Network.TaskPool == "" {
		b.Network = Plan
	}
	n := start(t, node.Config{DataDir: dir, Bootstrap: &b})
	waitFor(t, n, "lead its cluster", func(ctx context.Context) bool {
		info, err := n.Client().Info(ctx)
		return err == nil && info.IsLeader
	})
	return n
}

// Join joins a node in dir to the cluster through manager m with a token
// of m's (the role's: "worker" or "manager"), and waits until it serves
// its socket; a manager also until it knows the leader. Empty Listen
// and RaftListen of a manager get free loopback ports.
func Join(t testing.TB, dir string, m *Node, role string, s node.Settings) *Node {
	t.Helper()
	tok, err := m.Client().Token(context.Background(), role)
	if err != nil {
		t.Fatalf("%s token: %v", role, err)
	}
	if role == "manager" {
		if s.Listen == "" {
			s.Listen = FreeAddr(t)
		}
		if s.RaftListen == "" {
			s.RaftListen = FreeAddr(t)
		}
	}
	n := start(t, node.Config{DataDir: dir, Join: &node.Join{Settings: s, Token: tok.Token, Manager: m.Report.Advertise}})
	if role == "manager" {
		waitFor(t, n, "know its leader", func(ctx context.Context) bool {
			info, err := n.Client().Info(ctx)
			return err == nil && info.Leader != ""
		})
	}
	return n
}

// Plan is an address plan of tests' own, apart from the default pools
// that other nodes on the host may use.
var Plan = api.NetworkConfig{TaskPool: "10.231.0.0/16", VIPPool: "10.232.0.0/16", NodeSubnetBits: 24}

// start lays the node out and runs it until the test ends.
func start(t testing.TB, cfg node.Config) *Node {
	t.Helper()
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil)).With("node", filepath.Base(cfg.DataDir))
	up := make(chan node.Report, 1)
	cfg.Up = func(r node.Report) { up <- r }
	nd, err := node.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{Node: nd, Dir: cfg.DataDir, Socket: node.Socket(cfg.DataDir), log: logs}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- nd.Run(ctx) }()
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: %v", n.Dir, err)
				}
			case <-time.After(2 * time.Minute):
				buf := make([]byte, 1<<22)
				t.Errorf("%s did not stop within 2 minutes; goroutines:\n%s", n.Dir, buf[:runtime.Stack(buf, true)])
			}
			if t.Failed() {
				t.Logf("%s log:\n%s", n.Dir, logs.String())
			}
		})
	}
	t.Cleanup(n.stop)
	select {
	case n.Report = <-up:
	case err := <-done:
		t.Fatalf("%s stopped before it was up: %v\n%s", n.Dir, err, logs.String())
	case <-time.After(upTimeout):
		t.Fatalf("%s did not serve its control socket within %s\n%s", n.Dir, upTimeout, logs.String())
	}
	return n
}

// waitFor polls cond until it holds, or fails the test after upTimeout.
func waitFor(t testing.TB, n *Node, what string, cond func(context.Context) bool) {
	t.Helper()
	if err := storetest.WaitFor(func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return cond(ctx)
	}, upTimeout); err != nil {
		t.Fatalf("%s did not %s within %s\n%s", n.Dir, what, upTimeout, n.log.String())
	}
}

// logBuffer keeps a node's log for a failing test.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
