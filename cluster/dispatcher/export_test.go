package dispatcher

import "time"

// NetIndexBuilds is how many network indexes the dispatcher has built.
func (d *Dispatcher) NetIndexBuilds() uint64 { return d.netIndexes.builds.Load() }

// FanoutResyncs is how many times the fan-out (re)started its watcher:
// once at start, then once each time it fell behind.
func (d *Dispatcher) FanoutResyncs() int {
	d.fan.mu.Lock()
	defer d.fan.mu.Unlock()
	return d.fan.resyncs
}

// Leading reports whether the dispatcher follows itself as the leader.
func (d *Dispatcher) Leading() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.leading
}

// MaxQueuedPerNode bounds the statuses one node has waiting.
const MaxQueuedPerNode = maxQueuedPerNode

// Running reports whether Run has started (and not ended).
func (d *Dispatcher) Running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.runCtx != nil
}

// ObserveViewCost records a view's cost, as a sent view does (the pace).
func (d *Dispatcher) ObserveViewCost(cost time.Duration) { d.pace.observe(cost) }
