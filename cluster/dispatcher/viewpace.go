package dispatcher

import (
	"sync"
	"time"
)

// Pacing of network views. A node's view holds every member of its
// networks and every backend of their services, cluster-wide: with a
// stack's default network spanning all nodes, each task's start changes
// every node's view, and sending each node its view after each change is
// N×T work (1,000 nodes × 20,000 tasks: the leader spent its time
// encoding views). Views are therefore paced: a session sends a new view
// at most once per interval, the interval being what keeps all sessions'
// views within viewBudget of a core, from the measured cost of one view
// (encoding and sending it). Below minViewInterval there is no pacing:
// a small cluster gets every change at once, as before (the backend
// propagation benchmarks measure that).
const (
	// viewBudget is the share of a core the sessions' views may take
	// when views change continuously.
	viewBudget = 0.25
	// minViewInterval: shorter intervals are not paced.
	minViewInterval = 50 * time.Millisecond
	// maxViewInterval bounds the wait of a change to reach a node.
	maxViewInterval = 10 * time.Second
)

// viewPace measures what a view costs the leader.
type viewPace struct {
	mu   sync.Mutex
	cost float64 // exponentially weighted mean cost of one view, in seconds
}

// observe records the cost of one view.
func (p *viewPace) observe(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cost == 0 {
		p.cost = d.Seconds()
		return
	}
	p.cost += (d.Seconds() - p.cost) / 16
}

// interval is the pause between two views of a session while sessions
// sessions are served; zero when pacing is not needed.
func (p *viewPace) interval(sessions int) time.Duration {
	p.mu.Lock()
	cost := p.cost
	p.mu.Unlock()
	d := time.Duration(cost * float64(sessions) / viewBudget * float64(time.Second))
	if d < minViewInterval {
		return 0
	}
	return min(d, maxViewInterval)
}
