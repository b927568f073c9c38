package orchestrator

import (
	"sort"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Viewer reads the store: *store.Store.
type Viewer interface {
	View(fn func(store.ReadTx) error) error
}

var (
	descRollouts = prometheus.NewDesc("gitorc_rollouts",
		"Services by the state of their rolling update or rollback (none: no update recorded).", []string{"state"}, nil)
	descTasks = prometheus.NewDesc("gitorc_tasks",
		"Tasks in the store by service and observed state; running is always reported, other states while a task is in them.",
		[]string{"service", "state"}, nil)
)

// updateStates are the series of gitorc_rollouts, every one always
// reported.
var updateStates = []api.UpdateState{api.UpdateNone, api.UpdateUpdating, api.UpdatePaused, api.UpdateCompleted,
	api.UpdateRollbackStarted, api.UpdateRollbackPaused, api.UpdateRollbackCompleted, api.UpdateWaiting}

// updateStateLabel is an update state's label value.
func updateStateLabel(s api.UpdateState) string {
	if s == api.UpdateNone {
		return "none"
	}
	return s.String()
}

// StateCollector exports the rollouts and tasks as the store holds them
// when scraped, so every manager reports the replicated state and a
// removed service's series are gone with it. Labels are bounded: update
// and task states are enums, services are the cluster's services.
type StateCollector struct {
	v Viewer
}

var _ prometheus.Collector = (*StateCollector)(nil)

// NewStateCollector returns a collector that reads the store through v.
func NewStateCollector(v Viewer) *StateCollector { return &StateCollector{v: v} }

// Describe implements prometheus.Collector.
func (c *StateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRollouts
	ch <- descTasks
}

// Collect implements prometheus.Collector.
func (c *StateCollector) Collect(ch chan<- prometheus.Metric) {
	var services []*api.Service
	var tasks []*api.Task
	err := c.v.View(func(tx store.ReadTx) error {
		var err error
		if services, err = store.Find[api.Service](tx, store.All()); err != nil {
			return err
		}
		tasks, err = store.Find[api.Task](tx, store.All())
		return err
	})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descTasks, err)
		return
	}
	for _, m := range StateMetrics(services, tasks) {
		ch <- m
	}
}

// StateMetrics are the series of the services and tasks of a store.
// Tasks of a service that is gone (being reaped) count under the name
// they carry.
func StateMetrics(services []*api.Service, tasks []*api.Task) []prometheus.Metric {
	rollouts := make(map[api.UpdateState]int, len(updateStates))
	type key struct {
		service string
		state   api.TaskState
	}
	counts := map[key]int{}
	for _, s := range services {
		st := api.UpdateNone
		if s.Update != nil {
			st = s.Update.State
		}
		rollouts[st]++
		counts[key{s.Spec.Name, api.TaskRunning}] += 0 // running is always reported
	}
	for _, t := range tasks {
		counts[key{t.ServiceName, t.Status.State}]++
	}
	out := make([]prometheus.Metric, 0, len(updateStates)+len(counts))
	for _, st := range updateStates {
		out = append(out, prometheus.MustNewConstMetric(descRollouts, prometheus.GaugeValue, float64(rollouts[st]), updateStateLabel(st)))
	}
	keys := make([]key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].service != keys[j].service {
			return keys[i].service < keys[j].service
		}
		return keys[i].state < keys[j].state
	})
	for _, k := range keys {
		out = append(out, prometheus.MustNewConstMetric(descTasks, prometheus.GaugeValue, float64(counts[k]), k.service, k.state.String()))
	}
	return out
}
