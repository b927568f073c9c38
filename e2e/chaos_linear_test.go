package e2e

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/gitorc/gitorc/cluster/controlapi"
	apiclient "github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// The chaos test's register clients: the store's linearizability check
// (storetest.RegisterModel, porcupine), run against the real managers
// through their control sockets while the faults happen. Each register is
// a label of one node: a put is a label update (POST /v1/nodes/{node}, a
// read-modify-write with the store's version check), a get a linearizable
// read (GET /v1/nodes/{node}?consistent=1). Clients pick a manager at
// random for each operation, whether it is up, cut off or the leader.

const (
	chaosRegisters  = 3
	chaosRegClients = 3
	chaosRegPrefix  = "chaos.reg"
)

type regCounts struct{ ok, unknown, refused int }

type regLoad struct {
	ch    *chaos
	node  string
	h     *storetest.History
	stopc chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	mu     sync.Mutex
	puts   regCounts
	gets   regCounts
	errors map[string]int
}

// regClient is a control API client of host i's socket, its calls
// bounded past the store's ApplyTimeout.
func (ch *chaos) regClient(i int) *apiclient.Client {
	return apiclient.Unix(ch.sock(i)).WithTimeout(20 * time.Second)
}

// startRegisters starts the register clients on node's labels; each stops
// after max operations or when stopped.
func (ch *chaos) startRegisters(node string, seed uint64, max int) *regLoad {
	l := &regLoad{ch: ch, node: node, h: storetest.NewHistory(), stopc: make(chan struct{}), errors: map[string]int{}}
	ch.t.Cleanup(l.stop)
	clients := make([]*apiclient.Client, chaosManagers+1)
	for i := 1; i <= chaosManagers; i++ {
		clients[i] = ch.regClient(i)
	}
	for cl := range chaosRegClients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(100+cl)))
			tick := time.NewTicker(300 * time.Millisecond)
			defer tick.Stop()
			for n := range max {
				select {
				case <-l.stopc:
					return
				case <-tick.C:
				}
				m := 1 + r.IntN(chaosManagers)
				key := fmt.Sprintf("%s%d", chaosRegPrefix, r.IntN(chaosRegisters))
				if r.IntN(2) == 0 {
					l.put(clients[m], cl, key, fmt.Sprintf("c%d-%d", cl, n))
				} else {
					l.get(clients[m], cl, key)
				}
			}
		}()
	}
	return l
}

func (l *regLoad) stop() {
	l.once.Do(func() { close(l.stopc) })
	l.wg.Wait()
}

// regOutcome classifies a failed call: refused (nothing was done: the
// manager is down, or gave a definite answer) or unknown (a write may
// still apply).
func regOutcome(err error) (unknown bool) {
	if code := apiclient.StatusOf(err); code != 0 {
		return code >= 500
	}
	return !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT)
}

// regFailure is a failed call for the log: the API's status and message,
// or the transport's cause (not the socket path).
func regFailure(what string, err error) string {
	if code := apiclient.StatusOf(err); code != 0 {
		msg := err.Error()
		if len(msg) > 80 {
			msg = msg[:80]
		}
		return fmt.Sprintf("%s %d %s", what, code, msg)
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return what + " 0 " + s
}

func (l *regLoad) note(c *regCounts, what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch what {
	case "ok":
		c.ok++
	case "unknown":
		c.unknown++
	default:
		c.refused++
		l.errors[what]++
	}
}

func (l *regLoad) put(c *apiclient.Client, cl int, key, value string) {
	in := storetest.RegisterInput{Put: true, Key: key, Value: value}
	call := l.h.Now()
	_, err := c.UpdateNode(context.Background(), l.node, controlapi.NodeUpdate{LabelAdd: map[string]string{key: value}})
	switch {
	case err == nil:
		l.h.Add(porcupine.Operation{ClientId: cl, Input: in, Call: call, Output: storetest.RegisterOutput{}, Return: l.h.Now()})
		l.note(&l.puts, "ok")
	case regOutcome(err):
		// May apply at any later time: it returns "never".
		l.h.Add(porcupine.Operation{ClientId: cl, Input: in, Call: call,
			Output: storetest.RegisterOutput{Unknown: true}, Return: math.MaxInt64})
		l.note(&l.puts, "unknown")
	default:
		l.note(&l.puts, regFailure("put", err))
	}
}

func (l *regLoad) get(c *apiclient.Client, cl int, key string) {
	call := l.h.Now()
	n, err := c.ConsistentNode(context.Background(), l.node)
	if err == nil {
		l.h.Add(porcupine.Operation{ClientId: cl, Input: storetest.RegisterInput{Key: key}, Call: call,
			Output: storetest.RegisterOutput{Value: n.Spec.Labels[key]}, Return: l.h.Now()})
		l.note(&l.gets, "ok")
		return
	}
	l.note(&l.gets, regFailure("get", err)) // a failed read changes nothing
}

// check reads every register once more on every manager (the cluster is
// whole again), then checks the whole history with porcupine.
func (l *regLoad) check() {
	t := l.ch.t
	l.stop()
	for i := 1; i <= chaosManagers; i++ {
		c := l.ch.regClient(i)
		for k := range chaosRegisters {
			l.get(c, chaosRegClients+i, fmt.Sprintf("%s%d", chaosRegPrefix, k))
		}
	}
	l.mu.Lock()
	t.Logf("registers: puts %d ok, %d unknown, %d refused; linearizable gets %d ok, %d refused",
		l.puts.ok, l.puts.unknown, l.puts.refused, l.gets.ok, l.gets.refused)
	for e, n := range l.errors {
		t.Logf("  %4d × %s", n, e)
		if strings.HasPrefix(e, "put 404 ") {
			// The node exists: a manager whose replica lagged answered
			// from it without checking with the leader.
			t.Errorf("registers: %d puts were told the node does not exist: %s", n, e)
		}
	}
	puts, gets := l.puts.ok, l.gets.ok
	l.mu.Unlock()
	if puts == 0 || gets < chaosManagers*chaosRegisters {
		t.Errorf("registers: %d puts and %d gets succeeded: the linearizability check has too little to check", puts, gets)
		return
	}
	res, info := porcupine.CheckOperationsVerbose(storetest.RegisterModel, l.h.Ops(), 2*time.Minute)
	switch res {
	case porcupine.Ok:
		t.Logf("registers: the history of %d operations is linearizable", len(l.h.Ops()))
	case porcupine.Illegal:
		where := "set GITORC_ARTIFACTS to keep its visualization"
		if dir := os.Getenv("GITORC_ARTIFACTS"); dir != "" {
			path := filepath.Join(dir, "chaos-registers.html")
			if err := porcupine.VisualizePath(storetest.RegisterModel, info, path); err == nil {
				where = "see " + path
			}
		}
		t.Errorf("registers: the history is not linearizable (a committed write lost, or a stale read); %s", where)
	default:
		t.Logf("registers: porcupine could not decide within its time limit (%d operations)", len(l.h.Ops()))
	}
}
