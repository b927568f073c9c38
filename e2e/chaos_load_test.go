package e2e

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// pushKind is one kind of commit the pusher makes.
type pushKind int

const (
	pushGood   pushKind = iota // web's page or replicas change
	pushCrash                  // web's command exits 1: the rollout fails and rolls back
	pushBroken                 // the stack file does not load
)

func (k pushKind) String() string { return [...]string{"good", "crash", "broken"}[k] }

// Outcomes of a push, as the pusher saw them.
const (
	outcomeSynced   = "synced"
	outcomeFailed   = "failed"   // marked failed (for a good commit: a fault failed its rollout)
	outcomeReverted = "reverted" // marked failed, and the cluster back on the last good revision
	outcomeTimeout  = "no outcome"
)

// chaosPush is one commit of the schedule.
type chaosPush struct {
	kind  pushKind
	scale bool          // a good commit changes web's replicas (else its page)
	gap   time.Duration // the pause before it

	page            string
	replicas        int
	commit          string
	pushed, settled time.Time
	outcome         string
}

func (p *chaosPush) String() string {
	if p.kind == pushGood && p.scale {
		return "good (replicas)"
	}
	if p.kind == pushGood {
		return "good (page)"
	}
	return p.kind.String()
}

// planPushes draws the commits: at least 4, about one for two faults, a
// quarter of them bad (crashing and broken in turn), the last one good.
// A good commit changes web's page or its replicas, never both at once
// (see chaosStack on why).
func planPushes(rng *rand.Rand, faults int) []*chaosPush {
	n := max(4, faults/2+2)
	bad := max(2, n/4)
	var out []*chaosPush
	for i := range n {
		p := &chaosPush{kind: pushGood, scale: rng.IntN(2) == 0, gap: time.Second + time.Duration(rng.Int64N(int64(3*time.Second)))}
		if i < bad {
			p.kind = pushCrash + pushKind(i%2)
		}
		out = append(out, p)
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	if out[n-1].kind != pushGood {
		for i := range out {
			if out[i].kind == pushGood {
				out[i], out[n-1] = out[n-1], out[i]
				break
			}
		}
	}
	return out
}

// pusher commits the planned pushes one after the other, each once the
// one before has an outcome (bounded), while the faults run.
type pusher struct {
	pushes []*chaosPush
	// replicas are web's in the last good commit synced, once done.
	replicas int
	errs     []string
	stop     chan struct{}
	done     chan struct{}
}

func (ch *chaos) startPusher(plan []*chaosPush) *pusher {
	p := &pusher{pushes: plan, replicas: 2, stop: make(chan struct{}), done: make(chan struct{})}
	var once sync.Once
	ch.t.Cleanup(func() { once.Do(func() { close(p.stop) }); <-p.done })
	reg := ch.c.registryAddr()
	go func() {
		defer close(p.done)
		// What the cluster runs: the last good commit synced. Each commit
		// changes one thing of it.
		page, replicas := "v0", 2
		for i, ps := range plan {
			select {
			case <-p.stop:
				return
			case <-time.After(ps.gap):
			}
			ps.page, ps.replicas = page, replicas
			content := brokenStack
			switch {
			case ps.kind == pushGood && ps.scale:
				ps.replicas = 5 - replicas // 2 and 3 in turn
				content = chaosStack(reg, ps.page, ps.replicas, false)
			case ps.kind == pushGood:
				ps.page = fmt.Sprintf("v%d", i+1)
				content = chaosStack(reg, ps.page, ps.replicas, false)
			case ps.kind == pushCrash:
				content = chaosStack(reg, ps.page, ps.replicas, true)
			}
			c, err := ch.repo.Commit("main", fmt.Sprintf("push %d: %s", i+1, ps), map[string]string{"app/compose.yaml": content})
			if err != nil {
				p.errs = append(p.errs, fmt.Sprintf("push %d: %v", i+1, err))
				return
			}
			ps.commit, ps.pushed = c, time.Now()
			ps.outcome = ch.awaitOutcome(ps, p.stop)
			ps.settled = time.Now()
			if ps.outcome == outcomeSynced {
				page, replicas = ps.page, ps.replicas
			}
			p.replicas = replicas
			if ps.outcome == outcomeTimeout {
				p.errs = append(p.errs, fmt.Sprintf("push %d (%s %s): no outcome after %s", i+1, ps, short(c), pushOutcomeTimeout))
			}
		}
	}()
	return p
}

// pushOutcomeTimeout bounds the wait for a push's outcome: the progress
// of a rollout that a fault holds up included.
const pushOutcomeTimeout = 300 * time.Second

// awaitOutcome polls the sync state until the push has an outcome.
func (ch *chaos) awaitOutcome(ps *chaosPush, stop <-chan struct{}) string {
	deadline := time.Now().Add(pushOutcomeTimeout)
	for time.Now().Before(deadline) {
		if st, ok := ch.status(); ok {
			failed := slices.Contains(st.FailedRevisions, ps.commit)
			switch {
			case ps.kind == pushGood && st.Revision == ps.commit && st.Phase == api.SyncSynced:
				return outcomeSynced
			case ps.kind == pushBroken && failed:
				return outcomeFailed
			case failed && st.InFlight == nil && st.Revision != ps.commit:
				return outcomeReverted
			}
		}
		select {
		case <-stop:
			return outcomeTimeout
		case <-time.After(500 * time.Millisecond):
		}
	}
	return outcomeTimeout
}

// chaosRequest is one request of the client.
type chaosRequest struct {
	at     time.Time
	target int // the host whose published port it went to
	err    error
}

// chaosLoad sends requests from the client to the published port on the
// workers in turn, ten a second, each on a new connection, until stopped
// or max were sent.
type chaosLoad struct {
	mu    sync.Mutex
	reqs  []chaosRequest
	stopc chan struct{}
	done  chan struct{}
	once  sync.Once
}

func (ch *chaos) startLoad(cl *client, max int) *chaosLoad {
	l := &chaosLoad{stopc: make(chan struct{}), done: make(chan struct{})}
	ch.t.Cleanup(l.stop)
	hc := cl.http()
	go func() {
		defer close(l.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := range max {
			select {
			case <-l.stopc:
				return
			case <-tick.C:
			}
			target := chaosManagers + 1 + i%chaosWorkers
			r := chaosRequest{at: time.Now(), target: target}
			resp, err := hc.Get(ch.url(target))
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("%s", resp.Status)
				}
			}
			r.err = err
			l.mu.Lock()
			l.reqs = append(l.reqs, r)
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *chaosLoad) stop() {
	l.once.Do(func() { close(l.stopc) })
	<-l.done
}

// report logs the requests and their failures per fault window (from the
// injection until the cluster was whole again), by how the fault stood to
// the request: on its own path (the worker it was sent to cut off or
// killed), on the other worker (where part of the backends run), on a
// manager, or none (calm).
func (ch *chaos) report(windows []window, p *pusher, l *chaosLoad) {
	t := ch.t
	l.mu.Lock()
	reqs := slices.Clone(l.reqs)
	l.mu.Unlock()
	type count struct{ sent, failed int }
	perWindow := make([]map[string]*count, len(windows))
	calm := &count{}
	var calmFailed []string
	for _, r := range reqs {
		in := false
		for i, w := range windows {
			if r.at.Before(w.start) || r.at.After(w.recovered) {
				continue
			}
			in = true
			rel := "manager fault"
			switch {
			case isWorker(w.host) && w.host == r.target:
				rel = "own path"
			case isWorker(w.host):
				rel = "other worker"
			}
			if perWindow[i] == nil {
				perWindow[i] = map[string]*count{}
			}
			cnt := perWindow[i][rel]
			if cnt == nil {
				cnt = &count{}
				perWindow[i][rel] = cnt
			}
			cnt.sent++
			if r.err != nil {
				cnt.failed++
			}
		}
		if in {
			continue
		}
		calm.sent++
		if r.err != nil {
			calm.failed++
			rollout := ""
			for _, ps := range p.pushes {
				if !ps.pushed.IsZero() && !r.at.Before(ps.pushed) && (ps.settled.IsZero() || !r.at.After(ps.settled)) {
					rollout = fmt.Sprintf(" (during push %s %s)", ps.kind, short(ps.commit))
				}
			}
			calmFailed = append(calmFailed, fmt.Sprintf("%s h%d%s: %v", r.at.Format("15:04:05.000"), r.target, rollout, r.err))
		}
	}
	for i, w := range windows {
		var parts []string
		for _, rel := range []string{"own path", "other worker", "manager fault"} {
			if cnt := perWindow[i][rel]; cnt != nil {
				parts = append(parts, fmt.Sprintf("%s %d/%d failed", rel, cnt.failed, cnt.sent))
			}
		}
		t.Logf("window %d %s h%d (%s held, whole %s after): %s", i+1, w.kind, w.host, w.heal.Sub(w.start).Round(100*time.Millisecond),
			w.recovered.Sub(w.heal).Round(100*time.Millisecond), strings.Join(parts, ", "))
	}
	t.Logf("requests: %d sent; outside fault windows %d/%d failed", len(reqs), calm.failed, calm.sent)
	if len(calmFailed) > 10 {
		calmFailed = append(calmFailed[:10], fmt.Sprintf("… %d more", len(calmFailed)-10))
	}
	if len(calmFailed) > 0 {
		t.Logf("failed outside fault windows:\n%s", strings.Join(calmFailed, "\n"))
	}
}
