package dispatcher

import (
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	dto "github.com/prometheus/client_model/go"
)

func TestStartLatency(t *testing.T) {
	created := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	now := created.Add(1500 * time.Millisecond)
	mk := func(st api.TaskState) *api.Task {
		return &api.Task{Meta: api.Meta{CreatedAt: created}, Status: api.TaskStatus{State: st}}
	}
	for _, tc := range []struct {
		name     string
		task     *api.Task
		next     api.TaskState
		want     time.Duration
		observed bool
	}{
		{"starting to running", mk(api.TaskStarting), api.TaskRunning, 1500 * time.Millisecond, true},
		{"assigned straight to running", mk(api.TaskAssigned), api.TaskRunning, 1500 * time.Millisecond, true},
		{"running again (health change)", mk(api.TaskRunning), api.TaskRunning, 0, false},
		{"preparing", mk(api.TaskAssigned), api.TaskPreparing, 0, false},
		{"failed before running", mk(api.TaskStarting), api.TaskFailed, 0, false},
		{"no creation time", &api.Task{Status: api.TaskStatus{State: api.TaskStarting}}, api.TaskRunning, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := startLatency(tc.task, api.TaskStatus{State: tc.next}, now)
			if ok != tc.observed || got != tc.want {
				t.Errorf("startLatency = %v, %v; want %v, %v", got, ok, tc.want, tc.observed)
			}
		})
	}
}

// A node's heartbeats count, and the gap between two of them is observed
// from the second on; a node not known to be ready has no previous one.
func TestHeartbeatMetrics(t *testing.T) {
	var l liveness
	l.seen = map[string]seenAt{}
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if prev := l.heartbeat("n", t0); !prev.IsZero() {
		t.Errorf("heartbeat of an unknown node: previous %v, want zero", prev)
	}
	l.beat("n", t0)
	m := NewMetrics()
	for _, at := range []time.Time{t0.Add(time.Second), t0.Add(6 * time.Second), t0.Add(13 * time.Second)} {
		m.observeHeartbeat(l.heartbeat("n", at), at)
	}
	var c, h dto.Metric
	if err := m.heartbeats.Write(&c); err != nil {
		t.Fatal(err)
	}
	if err := m.heartbeatGap.Write(&h); err != nil {
		t.Fatal(err)
	}
	if got := c.GetCounter().GetValue(); got != 3 {
		t.Errorf("heartbeats = %v, want 3", got)
	}
	if n, sum := h.GetHistogram().GetSampleCount(), h.GetHistogram().GetSampleSum(); n != 2 || sum != 12 {
		t.Errorf("gaps: %d observed, sum %v s; want 2, 12 s (5 s and 7 s)", n, sum)
	}
	l.forget("n")
	if prev := l.heartbeat("n", t0.Add(20*time.Second)); !prev.IsZero() {
		t.Errorf("heartbeat of a forgotten node: previous %v, want zero", prev)
	}
}
