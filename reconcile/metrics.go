package reconcile

import (
	"context"
	"errors"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/prometheus/client_golang/prometheus"
)

// Results of a sync run in gitorc_sync_runs_total, besides the phases a
// finished record has (synced, degraded, failed).
const (
	// ResultUnchanged is a sync that found nothing to do.
	ResultUnchanged = "unchanged"
	// ResultError is a sync stopped by an error that decides nothing
	// about the revision (fetch, I/O, store): the next sync retries.
	ResultError = "error"
	// ResultCancelled is a sync cut short by its context (leadership lost,
	// shutdown).
	ResultCancelled = "cancelled"
)

// Metrics are the sync controller's counters: one per node, given to
// every Controller the node runs (ControllerConfig.Metrics), registered by
// the composition root into a registry of its own (Collectors).
type Metrics struct {
	runs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics returns unregistered sync metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gitorc_sync_runs_total",
			Help: "Syncs run by this manager, by what started them and how they ended (synced, degraded, failed, unchanged, error, cancelled).",
		}, []string{"trigger", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gitorc_sync_duration_seconds",
			Help: "Time of a sync run, from the fetch to the end of the rollout's tracking, by what started it.",
			// From an ls-remote that finds nothing new to a rollout
			// tracked for its whole progress deadline.
			Buckets: []float64{.01, .05, .1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200},
		}, []string{"trigger"}),
	}
}

// Collectors are the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.runs, m.duration}
}

// observe counts one run of Sync; nil metrics count nothing.
func (m *Metrics) observe(ctx context.Context, trigger api.SyncTrigger, rec api.SyncRecord, err error, d time.Duration) {
	if m == nil {
		return
	}
	tr := trigger.String()
	m.runs.WithLabelValues(tr, SyncResult(ctx, rec, err)).Inc()
	m.duration.WithLabelValues(tr).Observe(d.Seconds())
}

// SyncResult is the result label of a sync run that returned rec and err.
func SyncResult(ctx context.Context, rec api.SyncRecord, err error) string {
	switch {
	case err != nil && (ctx.Err() != nil || errors.Is(err, context.Canceled)):
		return ResultCancelled
	case err != nil:
		return ResultError
	case rec.Revision == "":
		return ResultUnchanged
	}
	return rec.Result.String()
}

// StateReader reads the sync state: Cluster.Sync.
type StateReader interface {
	Sync(ctx context.Context) (api.SyncState, error)
}

// stateReadTimeout bounds a scrape's read of the sync state.
const stateReadTimeout = 5 * time.Second

var (
	descPhase = prometheus.NewDesc("gitorc_sync_phase",
		"The sync state's phase: 1 for the current one, 0 for the others.", []string{"phase"}, nil)
	descRevision = prometheus.NewDesc("gitorc_sync_revision_info",
		"The commit the cluster runs or converges to (value 1; no series before the first apply).", []string{"revision"}, nil)
	descLastGood = prometheus.NewDesc("gitorc_sync_last_good_revision_info",
		"The last commit that rolled out healthy, what a failed rollout reverts to (value 1; no series before one).", []string{"revision"}, nil)
	descSuspended = prometheus.NewDesc("gitorc_sync_suspended",
		"1 while automatic syncs are suspended (gitorc suspend), else 0.", nil, nil)
	descFailedRevisions = prometheus.NewDesc("gitorc_sync_failed_revisions",
		"Commits marked failed, not retried until the source moves past them.", nil, nil)
)

// syncPhases are every phase, each a series of gitorc_sync_phase.
var syncPhases = []api.SyncPhase{api.SyncUnknown, api.SyncProgressing, api.SyncSynced, api.SyncDegraded,
	api.SyncFailed, api.SyncSuspended}

// StateCollector exports the sync state as it is in the store when
// scraped: the phase, the applied and the last good revision. Read at
// scrape time, so every manager reports the replicated state, and a
// revision gauge has exactly one series: the old commit's is gone once the
// state names another.
type StateCollector struct {
	r StateReader
}

var _ prometheus.Collector = (*StateCollector)(nil)

// NewStateCollector returns a collector that reads the sync state from r.
func NewStateCollector(r StateReader) *StateCollector { return &StateCollector{r: r} }

// Describe implements prometheus.Collector.
func (c *StateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPhase, descRevision, descLastGood, descSuspended, descFailedRevisions} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *StateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), stateReadTimeout)
	defer cancel()
	st, err := c.r.Sync(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descPhase, err)
		return
	}
	for _, m := range StateMetrics(st) {
		ch <- m
	}
}

// StateMetrics are the series of a sync state.
func StateMetrics(st api.SyncState) []prometheus.Metric {
	var out []prometheus.Metric
	for _, p := range syncPhases {
		v := 0.0
		if p == st.Phase {
			v = 1
		}
		out = append(out, prometheus.MustNewConstMetric(descPhase, prometheus.GaugeValue, v, p.String()))
	}
	if st.Revision != "" {
		out = append(out, prometheus.MustNewConstMetric(descRevision, prometheus.GaugeValue, 1, st.Revision))
	}
	if st.LastGoodRevision != "" {
		out = append(out, prometheus.MustNewConstMetric(descLastGood, prometheus.GaugeValue, 1, st.LastGoodRevision))
	}
	suspended := 0.0
	if st.Suspended {
		suspended = 1
	}
	out = append(out, prometheus.MustNewConstMetric(descSuspended, prometheus.GaugeValue, suspended),
		prometheus.MustNewConstMetric(descFailedRevisions, prometheus.GaugeValue, float64(len(st.FailedRevisions))))
	return out
}
