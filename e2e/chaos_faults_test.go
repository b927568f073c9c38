package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// faultKind is one kind of fault of the chaos schedule.
type faultKind int

const (
	faultKillLeader   faultKind = iota // SIGKILL the leading manager, restart it later
	faultKillFollower                  // SIGKILL a following manager, restart it later
	faultKillWorker                    // SIGKILL a worker's node, restart it later
	faultCutManager                    // isolate a manager from every other host, heal later
	faultCutWorker                     // isolate a worker from every other host, heal later
	faultContainerd                    // SIGKILL a worker's own containerd (its executor restarts it)
	faultKinds
)

var faultNames = []string{"kill-leader", "kill-follower", "kill-worker", "cut-manager", "cut-worker", "kill-containerd"}

func (k faultKind) String() string { return faultNames[k] }

// fault is one entry of the schedule, drawn from the seed. Which manager
// is the leader is known only when the fault is injected: pick chooses
// among the candidates then.
type fault struct {
	kind faultKind
	pick int           // chooses the host among the candidates
	hold time.Duration // how long the fault lasts
	gap  time.Duration // the pause after the cluster recovered
}

// window is what a fault did and when: from injection until the cluster
// was whole again.
type window struct {
	fault
	host                   int
	start, heal, recovered time.Time
	pid                    int // the containerd killed
}

func planFaults(rng *rand.Rand, n int, hold time.Duration) []fault {
	out := make([]fault, n)
	for i := range out {
		out[i] = fault{
			kind: faultKind(rng.IntN(int(faultKinds))),
			pick: rng.IntN(1 << 16),
			hold: hold/3 + time.Duration(rng.Int64N(int64(hold-hold/3)+1)),
			gap:  time.Second + time.Duration(rng.Int64N(int64(2*time.Second))),
		}
	}
	return out
}

// runFaults carries out the schedule, one fault at a time: inject, hold,
// heal or restart, wait (bounded) until every node is back, pause.
func (ch *chaos) runFaults(sched []fault) []window {
	t := ch.t
	var out []window
	for i, f := range sched {
		w := window{fault: f}
		w.host = ch.target(f)
		if w.host == 0 {
			t.Logf("fault %d %s: no leader known, none injected", i+1, f.kind)
			continue
		}
		w.start = time.Now()
		ch.inject(&w)
		t.Logf("fault %d: %s of h%d for %s", i+1, f.kind, w.host, f.hold.Round(100*time.Millisecond))
		time.Sleep(f.hold) // the fault's length: part of the schedule, not a wait for a condition
		w.heal = time.Now()
		ch.undo(&w)
		restarted := 0
		if f.kind == faultKillWorker {
			restarted = w.host
		}
		ch.c.waitFor(fmt.Sprintf("the cluster whole after fault %d (%s of h%d)", i+1, f.kind, w.host), 180*time.Second, func() bool {
			return ch.whole(restarted, w.heal)
		})
		w.recovered = time.Now()
		t.Logf("fault %d: healed; whole again %s after the heal", i+1, w.recovered.Sub(w.heal).Round(100*time.Millisecond))
		out = append(out, w)
		time.Sleep(f.gap) // the schedule's pause between faults
	}
	return out
}

// target picks the fault's host among its candidates.
func (ch *chaos) target(f fault) int {
	switch f.kind {
	case faultKillLeader:
		return ch.leader()
	case faultKillFollower:
		l := ch.leader()
		if l == 0 {
			return 0
		}
		var fs []int
		for i := 1; i <= chaosManagers; i++ {
			if i != l {
				fs = append(fs, i)
			}
		}
		return fs[f.pick%len(fs)]
	case faultCutManager:
		return 1 + f.pick%chaosManagers
	default:
		return chaosManagers + 1 + f.pick%chaosWorkers
	}
}

func (ch *chaos) inject(w *window) {
	c := ch.c
	switch w.kind {
	case faultKillLeader, faultKillFollower, faultKillWorker:
		ch.mu.Lock()
		ch.down[w.host] = true
		ch.mu.Unlock()
		c.procs[w.host-1].Kill()
	case faultCutManager, faultCutWorker:
		iso := c.nw.Isolate(c.nw.Host(w.host))
		ch.mu.Lock()
		ch.cut[w.host] = iso
		ch.mu.Unlock()
	case faultContainerd:
		pid, err := ch.containerdPid(w.host)
		if err != nil {
			ch.t.Fatalf("h%d's containerd: %v", w.host, err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			ch.t.Fatalf("kill h%d's containerd (pid %d): %v", w.host, pid, err)
		}
		w.pid = pid
	}
}

func (ch *chaos) undo(w *window) {
	switch w.kind {
	case faultKillLeader, faultKillFollower, faultKillWorker:
		ch.restart(w.host)
	case faultCutManager, faultCutWorker:
		ch.mu.Lock()
		iso := ch.cut[w.host]
		delete(ch.cut, w.host)
		ch.mu.Unlock()
		iso.Heal()
	case faultContainerd:
		// The executor restarts its containerd by itself: wait until a
		// new one answers on the socket.
		sock := filepath.Join(ch.c.dirs[w.host-1], "executor", "containerd", "containerd.sock")
		ch.c.waitFor(fmt.Sprintf("h%d's containerd restarted by its executor", w.host), 120*time.Second, func() bool {
			pid, err := ch.containerdPid(w.host)
			if err != nil || pid == w.pid {
				return false
			}
			conn, err := net.DialTimeout("unix", sock, time.Second)
			if err != nil {
				return false
			}
			_ = conn.Close()
			return true
		})
	}
}

// containerdPid is the pid of the containerd host i's executor runs, from
// its pid file, checked against the process's command line.
func (ch *chaos) containerdPid(i int) (int, error) {
	dir := filepath.Join(ch.c.dirs[i-1], "executor", "containerd")
	b, err := os.ReadFile(filepath.Join(dir, "containerd.pid"))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, err
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), filepath.Join(dir, "config.toml")) {
		return 0, fmt.Errorf("pid %d is not its containerd", pid)
	}
	return pid, nil
}
