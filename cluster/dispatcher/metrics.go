package dispatcher

import (
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the dispatcher's numbers for Prometheus. The task start
// latency is observed where the store sees a task become running: in the
// leader's status writes. One Metrics outlives the dispatchers a node
// creates (Config.Metrics); the composition root registers its
// Collectors into a registry of its own.
type Metrics struct {
	startLatency prometheus.Histogram
	heartbeats   prometheus.Counter
	heartbeatGap prometheus.Histogram
	dropped      prometheus.Counter
	indexBuild   prometheus.Histogram
}

// NewMetrics returns unregistered dispatcher metrics.
func NewMetrics() *Metrics {
	return &Metrics{startLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "gitorc_task_start_latency_seconds",
		Help: "Time from a task's creation to the status write that makes it running (scheduling, image pull, container start), on the leader.",
		// A cached image starts in ~0.1 s; a large pull takes minutes.
		Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
	}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gitorc_dispatcher_heartbeats_total",
			Help: "Heartbeat messages the leader received from worker sessions.",
		}),
		heartbeatGap: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gitorc_dispatcher_heartbeat_interval_seconds",
			Help: "Time between two heartbeats of a node as the leader handles them: the heartbeat period plus how late the second one was sent, carried and handled. A node is down when no message comes for 3 periods.",
			// Around the default 5 s period, and shorter periods.
			Buckets: []float64{.25, .5, 1, 2, 3, 4, 4.5, 5, 5.1, 5.25, 5.5, 6, 7.5, 10, 15, 20, 30},
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gitorc_dispatcher_statuses_dropped_total",
			Help: "Task status reports the leader dropped because the node's status queue was full; each drop ends the node's session, and the next one reports every task of the node again.",
		}),
		indexBuild: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gitorc_dispatcher_view_index_build_seconds",
			Help: "Time to build the network view index of a store state (read every node, network, service and task, and index them), shared by the sessions that send views of that state.",
			// 10,000 tasks take ~15 ms, 100,000 ~0.2-0.4 s.
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
}

// Collectors are the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.startLatency, m.heartbeats, m.heartbeatGap, m.dropped, m.indexBuild}
}

// observeHeartbeat records a heartbeat and, when the node's previous one
// is known (prev not zero), the time since it.
func (m *Metrics) observeHeartbeat(prev, now time.Time) {
	if m == nil {
		return
	}
	m.heartbeats.Inc()
	if !prev.IsZero() {
		m.heartbeatGap.Observe(max(now.Sub(prev), 0).Seconds())
	}
}

// observeDropped records n status reports dropped from a full queue.
func (m *Metrics) observeDropped(n int) {
	if m == nil {
		return
	}
	m.dropped.Add(float64(n))
}

// observeIndexBuild records the build of a network view index.
func (m *Metrics) observeIndexBuild(d time.Duration) {
	if m == nil {
		return
	}
	m.indexBuild.Observe(d.Seconds())
}

// startLatency is how long a task took to start when a status moves it
// from cur to next at now: ok only for the move to running.
func startLatency(t *api.Task, next api.TaskStatus, now time.Time) (time.Duration, bool) {
	if t.Status.State >= api.TaskRunning || next.State != api.TaskRunning || t.CreatedAt.IsZero() {
		return 0, false
	}
	d := now.Sub(t.CreatedAt)
	if d < 0 {
		d = 0
	}
	return d, true
}

// observeStarts records the start latencies of a committed status batch.
func (m *Metrics) observeStarts(ds []time.Duration) {
	if m == nil {
		return
	}
	for _, d := range ds {
		m.startLatency.Observe(d.Seconds())
	}
}
