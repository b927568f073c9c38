package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gitorc/gitorc/cluster/dispatcher"
	"github.com/gitorc/gitorc/cluster/orchestrator"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/gitorc/gitorc/reconcile/storecluster"
	"github.com/gitorc/gitorc/reconcile/webhook"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics server timeouts: a scrape reads the store once.
const (
	metricsReadTimeout  = 10 * time.Second
	metricsWriteTimeout = 30 * time.Second
)

// nodeMetrics are a node's Prometheus metrics, in a registry of its own
// (never the process's default one: tests run many nodes in a process).
// The packages that own the numbers define them; this composition root
// registers them once per node run, so the stores and dispatchers a role
// change recreates report into the same metrics.
type nodeMetrics struct {
	reg   *prometheus.Registry
	store *store.Metrics
	disp  *dispatcher.Metrics
	sync  *reconcile.Metrics
	hooks *webhook.Metrics
}

// newNodeMetrics registers the node's metrics: Go runtime and process,
// Raft, sync runs, webhook deliveries, task start latency, and the state
// a manager's store holds (sync state, rollouts, tasks), read at scrape.
func newNodeMetrics(stores func() *store.Store) *nodeMetrics {
	m := &nodeMetrics{reg: prometheus.NewRegistry(), store: store.NewMetrics(), disp: dispatcher.NewMetrics(),
		sync: reconcile.NewMetrics(), hooks: webhook.NewMetrics()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(m.store.Collectors()...)
	m.reg.MustRegister(m.disp.Collectors()...)
	m.reg.MustRegister(m.sync.Collectors()...)
	m.reg.MustRegister(m.hooks.Collectors()...)
	m.reg.MustRegister(storeState{stores})
	return m
}

// The parts' metrics; a nil nodeMetrics (a daemon built without run) has
// none, and the parts then count nothing or keep their own.
func (m *nodeMetrics) storeMetrics() *store.Metrics {
	if m == nil {
		return nil
	}
	return m.store
}

func (m *nodeMetrics) dispatcherMetrics() *dispatcher.Metrics {
	if m == nil {
		return nil
	}
	return m.disp
}

func (m *nodeMetrics) syncMetrics() *reconcile.Metrics {
	if m == nil {
		return nil
	}
	return m.sync
}

func (m *nodeMetrics) webhookMetrics() *webhook.Metrics {
	if m == nil {
		return nil
	}
	return m.hooks
}

// storeState collects what the manager's current store holds: nothing on
// a worker, or while the store is locked or being replaced.
type storeState struct {
	stores func() *store.Store
}

func (c storeState) Describe(ch chan<- *prometheus.Desc) {
	reconcile.NewStateCollector(nil).Describe(ch)
	orchestrator.NewStateCollector(nil).Describe(ch)
}

func (c storeState) Collect(ch chan<- prometheus.Metric) {
	s := c.stores()
	if s == nil || s.View(func(store.ReadTx) error { return nil }) != nil {
		return
	}
	reconcile.NewStateCollector(storecluster.New(s)).Collect(ch)
	orchestrator.NewStateCollector(s).Collect(ch)
}

// metricsHandler serves the registry in Prometheus's formats; a collector
// that fails is logged and left out of the answer, the rest is served.
func metricsHandler(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError,
		ErrorLog: slogPrinter{log}, Registry: reg, Timeout: metricsWriteTimeout})
}

// slogPrinter is promhttp's error log on the node's logger.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics", "err", fmt.Sprint(v...)) }

// startMetrics serves GET /metrics on the node's metrics address (plain
// HTTP, off without one) until ctx ends; stop waits for the server.
func (d *daemon) startMetrics(ctx context.Context) (stop func(), err error) {
	d.metrics = newNodeMetrics(d.storeRef.Load)
	addr := d.state.MetricsListen
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener %s: %w", addr, err)
	}
	log := d.log.With("component", "metrics")
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler(d.metrics.reg, log))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: metricsReadTimeout, ReadTimeout: metricsReadTimeout,
		WriteTimeout: metricsWriteTimeout, MaxHeaderBytes: 64 << 10}
	log.Info("serving metrics", "listen", ln.Addr().String())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	sctx, cancel := context.WithCancel(ctx)
	go func() { <-sctx.Done(); _ = srv.Close() }()
	return func() { cancel(); <-done }, nil
}
