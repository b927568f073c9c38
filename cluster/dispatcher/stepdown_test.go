package dispatcher_test

import (
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/gitorc/gitorc/cluster/store"
)

// switchLeadership leads until stepDown, then follows leaderAddr.
type switchLeadership struct {
	mu         sync.Mutex
	following  bool
	leaderAddr string
	subs       []chan store.LeaderInfo
}

func (l *switchLeadership) Leader() store.LeaderInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leaderLocked()
}

func (l *switchLeadership) leaderLocked() store.LeaderInfo {
	if l.following {
		return store.LeaderInfo{ID: "m2", Addr: l.leaderAddr}
	}
	return store.LeaderInfo{ID: "m1", IsLeader: true}
}

func (l *switchLeadership) WatchLeader() (<-chan store.LeaderInfo, func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := make(chan store.LeaderInfo, 4)
	ch <- l.leaderLocked()
	l.subs = append(l.subs, ch)
	return ch, func() {}
}

func (l *switchLeadership) stepDown(leaderAddr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.following, l.leaderAddr = true, leaderAddr
	for _, ch := range l.subs {
		ch <- l.leaderLocked()
	}
}

// A leader that steps down ends its sessions at once with a redirect to
// the new leader, also those of workers that send nothing meanwhile: it
// used to wait for the worker's next message, and then go on serving it
// (each heartbeat kept the session on the old leader).
func TestSteppingDownEndsSessions(t *testing.T) {
	lead := &switchLeadership{}
	e := newEnv(t, envOptions{leadership: lead})
	stream, _, err := e.rawSession(clientTLS(t, e.root, e.cert("w1", api.RoleWorker)), "w1")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "w1 ready", func() bool { return e.nodeState("w1") == api.NodeReady })
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				ended <- err
				return
			}
		}
	}()
	lead.stepDown("127.0.0.1:9")
	select {
	case err := <-ended:
		if addr, ok := wire.LeaderAddr(err); !ok || addr != "127.0.0.1:9" {
			t.Errorf("session ended with %v; want a redirect to 127.0.0.1:9", err)
		}
	case <-time.After(waitLong):
		t.Fatalf("the session did not end in %s after the leader stepped down", waitLong)
	}
}
