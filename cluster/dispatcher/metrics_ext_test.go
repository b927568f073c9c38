package dispatcher_test

import (
	"context"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// startCount is the number of task starts the histogram observed.
func startCount(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	return histogramCount(t, reg, "gitorc_task_start_latency_seconds")
}

// gathered is the one series of the metric named name.
func gathered(t *testing.T, reg *prometheus.Registry, name string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0]
		}
	}
	t.Fatalf("no %s", name)
	return nil
}

// histogramCount is the number of observations of the histogram named name.
func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	return gathered(t, reg, name).GetHistogram().GetSampleCount()
}

// counterValue is the value of the counter named name.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return gathered(t, reg, name).GetCounter().GetValue()
}

// A session's first view is made from a view index, whose build is
// observed.
func TestViewIndexBuildIsObserved(t *testing.T) {
	m := dispatcher.NewMetrics()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.Collectors()...)
	e := newEnv(t, envOptions{metrics: m})
	if n := histogramCount(t, reg, "gitorc_dispatcher_view_index_build_seconds"); n != 0 {
		t.Fatalf("%d index builds before any session", n)
	}
	e.startWorker("w1")
	waitFor(t, "node w1 ready", func() bool { return e.nodeState("w1") == api.NodeReady })
	waitFor(t, "an index build observed", func() bool {
		return histogramCount(t, reg, "gitorc_dispatcher_view_index_build_seconds") > 0
	})
}

// A status write that makes a task running observes its start latency,
// once: a later running report (a health change) does not.
func TestStatusWriteObservesStartLatency(t *testing.T) {
	m := dispatcher.NewMetrics()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.Collectors()...)
	e := newEnv(t, envOptions{metrics: m})
	c, ag, _ := e.startWorker("w1")
	waitFor(t, "node w1 ready", func() bool { return e.nodeState("w1") == api.NodeReady })
	e.create(newTask("t1", "w1"))
	waitFor(t, "task t1 assigned to w1", func() bool { return len(ag.last()) == 1 })
	if n := startCount(t, reg); n != 0 {
		t.Fatalf("%d starts before any task ran", n)
	}
	ts := time.Date(2030, 1, 1, 0, 0, 1, 0, time.UTC)
	report := func(st api.TaskStatus) {
		t.Helper()
		if err := c.ReportTaskStatus(context.Background(), "t1", st); err != nil {
			t.Fatal(err)
		}
	}
	report(api.TaskStatus{State: api.TaskRunning, Timestamp: ts, Message: "started"})
	waitFor(t, "t1 running in the store", func() bool { return e.task("t1").Status.State == api.TaskRunning })
	report(api.TaskStatus{State: api.TaskRunning, Timestamp: ts.Add(time.Second), Health: api.HealthHealthy})
	waitFor(t, "t1 healthy in the store", func() bool { return e.task("t1").Status.Health == api.HealthHealthy })
	if n := startCount(t, reg); n != 1 {
		t.Errorf("%d starts observed, want 1", n)
	}
}
