package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/gitorc/gitorc/cluster/controlapi"
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

// regHTTP is an HTTP client over host i's control socket.
func (ch *chaos) regHTTP(i int) *http.Client {
	sock := ch.sock(i)
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
}

// startRegisters starts the register clients on node's labels; each stops
// after max operations or when stopped.
func (ch *chaos) startRegisters(node string, seed uint64, max int) *regLoad {
	l := &regLoad{ch: ch, node: node, h: storetest.NewHistory(), stopc: make(chan struct{}), errors: map[string]int{}}
	ch.t.Cleanup(l.stop)
	clients := make([]*http.Client, chaosManagers+1)
	for i := 1; i <= chaosManagers; i++ {
		clients[i] = ch.regHTTP(i)
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

// outcome classifies a failed call: refused (nothing was done: the
// manager is down or gave a definite answer) or unknown (a write may
// still apply).
func regOutcome(code int, err error) (unknown bool) {
	if err != nil {
		return !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT)
	}
	return code >= 500
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

func (l *regLoad) put(hc *http.Client, cl int, key, value string) {
	in := storetest.RegisterInput{Put: true, Key: key, Value: value}
	body, _ := json.Marshal(controlapi.NodeUpdate{LabelAdd: map[string]string{key: value}})
	call := l.h.Now()
	code, msg, err := regCall(hc, http.MethodPost, "/v1/nodes/"+l.node, body, nil)
	switch {
	case err == nil && code == http.StatusOK:
		l.h.Add(porcupine.Operation{ClientId: cl, Input: in, Call: call, Output: storetest.RegisterOutput{}, Return: l.h.Now()})
		l.note(&l.puts, "ok")
	case regOutcome(code, err):
		// May apply at any later time: it returns "never".
		l.h.Add(porcupine.Operation{ClientId: cl, Input: in, Call: call,
			Output: storetest.RegisterOutput{Unknown: true}, Return: math.MaxInt64})
		l.note(&l.puts, "unknown")
	default:
		l.note(&l.puts, fmt.Sprintf("put %d %s%v", code, msg, errText(err)))
	}
}

func (l *regLoad) get(hc *http.Client, cl int, key string) {
	var n controlapi.Node
	call := l.h.Now()
	code, msg, err := regCall(hc, http.MethodGet, "/v1/nodes/"+l.node+"?consistent=1", nil, &n)
	if err == nil && code == http.StatusOK {
		l.h.Add(porcupine.Operation{ClientId: cl, Input: storetest.RegisterInput{Key: key}, Call: call,
			Output: storetest.RegisterOutput{Value: n.Spec.Labels[key]}, Return: l.h.Now()})
		l.note(&l.gets, "ok")
		return
	}
	l.note(&l.gets, fmt.Sprintf("get %d %s%v", code, msg, errText(err))) // a failed read changes nothing
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 { // keep the cause, not the socket path
		s = s[i+2:]
	}
	return s
}

// regCall makes one control API call; msg is the API's error message.
func regCall(hc *http.Client, method, path string, body []byte, out any) (code int, msg string, err error) {
	req, err := http.NewRequest(method, "http://gitorc"+path, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, "", err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		msg = e.Error
		if len(msg) > 80 {
			msg = msg[:80]
		}
		return resp.StatusCode, msg, nil
	}
	if out != nil {
		err = json.Unmarshal(b, out)
	}
	return resp.StatusCode, "", err
}

// check reads every register once more on every manager (the cluster is
// whole again), then checks the whole history with porcupine.
func (l *regLoad) check() {
	t := l.ch.t
	l.stop()
	for i := 1; i <= chaosManagers; i++ {
		hc := l.ch.regHTTP(i)
		for k := range chaosRegisters {
			l.get(hc, chaosRegClients+i, fmt.Sprintf("%s%d", chaosRegPrefix, k))
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
