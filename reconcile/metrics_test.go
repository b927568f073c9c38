package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSyncResult(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		rec  api.SyncRecord
		err  error
		want string
	}{
		{"nothing new", context.Background(), api.SyncRecord{}, nil, ResultUnchanged},
		{"synced", context.Background(), api.SyncRecord{Revision: "c1", Result: api.SyncSynced}, nil, "synced"},
		{"degraded", context.Background(), api.SyncRecord{Revision: "c1", Result: api.SyncDegraded}, nil, "degraded"},
		{"failed load", context.Background(), api.SyncRecord{Revision: "c1", Result: api.SyncFailed}, nil, "failed"},
		{"fetch error", context.Background(), api.SyncRecord{}, errors.New("fetch: boom"), ResultError},
		{"error after apply", context.Background(), api.SyncRecord{Revision: "c1", Result: api.SyncProgressing}, errors.New("track: boom"), ResultError},
		{"leadership lost", cancelled, api.SyncRecord{}, fmt.Errorf("fetch: %w", context.Canceled), ResultCancelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SyncResult(tc.ctx, tc.rec, tc.err); got != tc.want {
				t.Errorf("SyncResult = %q, want %q", got, tc.want)
			}
		})
	}
}

// The controller counts every Sync by trigger and result, and times it.
func TestSyncMetricsCountRuns(t *testing.T) {
	h := newHarness(t)
	m := NewMetrics()
	h.ctl.cfg.Metrics = m
	h.clock.onWait = func() { h.cluster.orchestrate("app:bad") }
	h.repo.commit("good", map[string]string{"web/compose.yaml": stack("app:1", 1)})
	h.sync(t) // synced
	h.sync(t) // unchanged
	h.repo.commit("broken", map[string]string{"web/compose.yaml": "services: [\n"})
	h.sync(t) // failed
	h.repo.commit("bad image", map[string]string{"web/compose.yaml": stack("app:bad", 1)})
	h.sync(t) // degraded, reverted
	// Unchanged: the failed commit is not retried.
	if _, err := h.ctl.Sync(context.Background(), api.TriggerPoll); err != nil {
		t.Fatal(err)
	}
	for result, want := range map[string]float64{"synced": 1, "unchanged": 1, "failed": 1, "degraded": 1} {
		if got := testutil.ToFloat64(m.runs.WithLabelValues("manual", result)); got != want {
			t.Errorf("runs{trigger=manual,result=%s} = %v, want %v", result, got, want)
		}
	}
	if got := testutil.ToFloat64(m.runs.WithLabelValues("poll", ResultUnchanged)); got != 1 {
		t.Errorf("runs{trigger=poll,result=unchanged} = %v, want 1", got)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.Collectors()...)
	if n, err := testutil.GatherAndCount(reg, "gitorc_sync_duration_seconds"); err != nil || n != 2 {
		t.Errorf("duration series = %d, %v; want 2 (manual, poll)", n, err)
	}
}

type stateOf api.SyncState

func (s *stateOf) Sync(context.Context) (api.SyncState, error) { return api.SyncState(*s), nil }

// The state collector keeps one series per revision gauge: a new commit
// replaces the old one's series, never adds to it.
func TestStateCollectorOneSeriesPerRevision(t *testing.T) {
	st := &stateOf{Phase: api.SyncSynced, Revision: "aaaa", LastGoodRevision: "aaaa"}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewStateCollector(st))
	expect := func(phase, rev, good string) {
		t.Helper()
		var b strings.Builder
		b.WriteString("# HELP gitorc_sync_phase The sync state's phase: 1 for the current one, 0 for the others.\n# TYPE gitorc_sync_phase gauge\n")
		for _, p := range syncPhases {
			v := 0
			if p.String() == phase {
				v = 1
			}
			fmt.Fprintf(&b, "gitorc_sync_phase{phase=%q} %d\n", p.String(), v)
		}
		b.WriteString("# HELP gitorc_sync_revision_info The commit the cluster runs or converges to (value 1; no series before the first apply).\n# TYPE gitorc_sync_revision_info gauge\n")
		fmt.Fprintf(&b, "gitorc_sync_revision_info{revision=%q} 1\n", rev)
		b.WriteString("# HELP gitorc_sync_last_good_revision_info The last commit that rolled out healthy, what a failed rollout reverts to (value 1; no series before one).\n# TYPE gitorc_sync_last_good_revision_info gauge\n")
		fmt.Fprintf(&b, "gitorc_sync_last_good_revision_info{revision=%q} 1\n", good)
		if err := testutil.GatherAndCompare(reg, strings.NewReader(b.String()),
			"gitorc_sync_phase", "gitorc_sync_revision_info", "gitorc_sync_last_good_revision_info"); err != nil {
			t.Error(err)
		}
	}
	expect("synced", "aaaa", "aaaa")
	st.Phase, st.Revision = api.SyncProgressing, "bbbb"
	expect("progressing", "bbbb", "aaaa")
	st.Phase, st.Revision, st.FailedRevisions = api.SyncDegraded, "aaaa", []string{"bbbb"}
	expect("degraded", "aaaa", "aaaa")
	if got, err := testutil.GatherAndCount(reg, "gitorc_sync_failed_revisions"); err != nil || got != 1 {
		t.Errorf("failed revisions: %d series, %v", got, err)
	}
}

// Before anything is applied there is no revision series at all.
func TestStateMetricsEmptyState(t *testing.T) {
	for _, m := range StateMetrics(api.SyncState{}) {
		if d := m.Desc().String(); strings.Contains(d, "revision_info") {
			t.Errorf("series for an empty state: %s", d)
		}
	}
}
