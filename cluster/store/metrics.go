package store

import (
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are a manager's Raft numbers for Prometheus: whether it leads,
// how long a write takes to commit, how long the state machine takes to
// apply committed entries. The store measures them itself rather than
// through hashicorp/raft's go-metrics telemetry, which reports into one
// process-wide sink (and under go-metrics' own names). One Metrics
// outlives the stores a node opens one after another (Config.Metrics);
// the composition root registers its Collectors into a registry of its
// own.
type Metrics struct {
	leader prometheus.Gauge
	commit prometheus.Histogram
	apply  prometheus.Histogram
	// entries counts the entries applied, a rate of the Raft log.
	entries prometheus.Counter
}

// NewMetrics returns unregistered store metrics.
func NewMetrics() *Metrics {
	// From a loopback commit (~1 ms) to one waiting out an election.
	commitBuckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	return &Metrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gitorc_raft_leader",
			Help: "1 while this manager is the Raft leader, else 0.",
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gitorc_raft_commit_seconds",
			Help:    "Time from proposing an entry on the leader until a quorum committed it and this manager applied it.",
			Buckets: commitBuckets,
		}),
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gitorc_raft_apply_seconds",
			Help:    "Time the store's state machine took to apply one batch of committed entries, on every manager.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
		entries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gitorc_raft_applied_entries_total",
			Help: "Raft log entries the store's state machine applied.",
		}),
	}
}

// Collectors are the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.leader, m.commit, m.apply, m.entries}
}

func (m *Metrics) setLeader(leads bool) {
	if leads {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
}

// timedFSM is the store's state machine as Raft sees it: the same one,
// with its applies timed.
type timedFSM struct {
	*fsm
	m *Metrics
}

var _ raft.BatchingFSM = timedFSM{}

func (t timedFSM) Apply(l *raft.Log) any { return t.ApplyBatch([]*raft.Log{l})[0] }

func (t timedFSM) ApplyBatch(logs []*raft.Log) []any {
	start := time.Now()
	out := t.fsm.ApplyBatch(logs)
	t.m.apply.Observe(time.Since(start).Seconds())
	t.m.entries.Add(float64(len(logs)))
	return out
}
