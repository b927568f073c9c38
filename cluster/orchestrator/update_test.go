package orchestrator

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/google/go-cmp/cmp"
)

func TestRollingUpdateBatches(t *testing.T) {
	cases := []struct {
		name        string
		parallelism uint64
		order       api.UpdateOrder
		wantLog     []string
		minLive     int // fewest tasks alive at any step
	}{
		{"parallelism 1 stop-first", 1, api.OrderStopFirst,
			[]string{"updating", "create 1", "create 1", "create 1", "create 1", "completed"}, 3},
		{"parallelism 2 stop-first", 2, api.OrderStopFirst, []string{"updating", "create 2", "create 2", "completed"}, 2},
		{"parallelism 0 is all at once", 0, api.OrderStopFirst, []string{"updating", "create 4", "completed"}, 0},
		{"start-first never drops below the count", 2, api.OrderStartFirst, []string{"updating", "create 2", "create 2", "completed"}, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, 4, cfg(tc.parallelism, tc.order, api.FailurePause))
			w.deploy("web:2")
			min := 99
			for i := 0; i < 50; i++ {
				w.step()
				ready := 0
				for _, tk := range w.tasks {
					if tk.Status.State == api.TaskRunning {
						ready++
					}
				}
				min = minInt(min, ready)
				if w.svc.Update.State == api.UpdateCompleted {
					break
				}
				w.now = w.now.Add(time.Second)
			}
			if diff := cmp.Diff(tc.wantLog, w.log); diff != "" {
				t.Errorf("log (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[string]int{"web:2": 4}, w.live()); diff != "" {
				t.Errorf("live tasks (-want +got):\n%s", diff)
			}
			if tc.order == api.OrderStartFirst && min < tc.minLive {
				t.Errorf("start-first: only %d ready tasks at some point, want at least %d", min, tc.minLive)
			}
		})
	}
}

func TestDelayBetweenBatches(t *testing.T) {
	c := cfg(1, api.OrderStopFirst, api.FailurePause)
	c.Delay = api.Duration(10 * time.Second)
	w := newWorld(t, 2, c)
	w.deploy("web:2")
	w.step() // batch 1: its old task leaves the load balancer
	w.now = w.now.Add(time.Second)
	w.step() // drained: stopped and replaced
	w.now = w.now.Add(time.Second)
	d := w.step() // batch 1 ready: the next waits for the delay
	if len(d.Create)+len(d.Drain) != 0 || d.Wake.IsZero() {
		t.Fatalf("second batch started before the delay: %+v", d)
	}
	readyAt := w.now
	if want := readyAt.Add(10 * time.Second); !d.Wake.Equal(want) || !w.svc.Update.NextBatchAt.Equal(want) {
		t.Errorf("wake at %v, next batch at %v, want %v", d.Wake, w.svc.Update.NextBatchAt, want)
	}
	// Any manager's CLI prints it from the store.
	if got, want := w.svc.Update.Progress(readyAt.Add(7*time.Second+300*time.Millisecond)), "updating 1/2, next batch in 3s"; got != want {
		t.Errorf("progress %q, want %q", got, want)
	}
	w.now = readyAt.Add(9 * time.Second)
	if d := w.step(); len(d.Create)+len(d.Drain) != 0 {
		t.Fatal("second batch started 1s early")
	}
	w.now = readyAt.Add(10 * time.Second)
	if d := w.step(); len(d.Drain) != 1 || !w.svc.Update.NextBatchAt.IsZero() {
		t.Fatalf("second batch did not start after the delay: %+v, status %+v", d, w.svc.Update)
	}
	w.now = w.now.Add(DefaultDrainDelay)
	if d := w.step(); len(d.Create) != 1 {
		t.Fatalf("second batch's task not replaced after the drain delay: %+v", d)
	}
}

func TestFailureActions(t *testing.T) {
	cases := []struct {
		name      string
		action    api.FailureAction
		image     string
		wantState api.UpdateState
		wantLive  map[string]int
		wantMsg   string
	}{
		{"pause", api.FailurePause, "bad:2", api.UpdatePaused, map[string]int{"web:1": 2}, "update paused: 1 of 1 updated tasks failed: exit code 1"},
		{"rollback", api.FailureRollback, "bad:2", api.UpdateRollbackCompleted, map[string]int{"web:1": 3}, "rolled back: 1 of 1 updated tasks failed: exit code 1"},
		{"never ready counts as failed", api.FailureRollback, "slow:2", api.UpdateRollbackCompleted, map[string]int{"web:1": 3}, "rolled back: 1 of 1 updated tasks failed: not ready within 1m5s (starting)"},
		{"continue carries on", api.FailureContinue, "bad:2", api.UpdateCompleted, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, 3, cfg(1, api.OrderStopFirst, tc.action))
			w.deploy(tc.image)
			if tc.action == api.FailureContinue {
				for i := 0; i < 12 && (w.svc.Update == nil || w.svc.Update.State != api.UpdateCompleted); i++ {
					w.step()
					w.now = w.now.Add(time.Second)
				}
				// Swarm completes the update; the failures (every slot's
				// task, and restarts of them) stay visible.
				if w.svc.Update.State != api.UpdateCompleted || w.svc.Update.Failed < 3 ||
					w.svc.Update.Message != fmt.Sprintf("update completed with %d failed task(s): exit code 1", w.svc.Update.Failed) {
					t.Errorf("continue: %+v", w.svc.Update)
				}
				return
			}
			w.run(10*time.Second, 100)
			if w.svc.Update.State != tc.wantState || w.svc.Update.Message != tc.wantMsg {
				t.Errorf("state %s %q, want %s %q (log %v)", w.svc.Update.State, w.svc.Update.Message, tc.wantState, tc.wantMsg, w.log)
			}
			if diff := cmp.Diff(tc.wantLive, w.live()); diff != "" {
				t.Errorf("live (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFailureDuringRollbackPauses(t *testing.T) {
	w := newWorld(t, 2, cfg(1, api.OrderStopFirst, api.FailureRollback))
	w.deploy("bad:2")
	// The previous spec is broken too: the rollback cannot succeed.
	w.svc.PreviousSpec.Task.Container.Image = "bad:1"
	w.run(10*time.Second, 100)
	if w.svc.Update.State != api.UpdateRollbackPaused || !strings.HasPrefix(w.svc.Update.Message, "rollback paused: ") {
		t.Errorf("state %s %q (log %v)", w.svc.Update.State, w.svc.Update.Message, w.log)
	}
	if n := strings.Count(strings.Join(w.log, " "), "rollback "); n != 1 {
		t.Errorf("rolled back %d times: a rollback must never be rolled back (%v)", n, w.log)
	}
}

func TestMaxFailureRatioBoundary(t *testing.T) {
	// 1 failure out of 2 updated tasks is a ratio of 0.5: equal does not
	// fire, greater does.
	for _, tc := range []struct {
		ratio float64
		fires bool
	}{{0.5, false}, {0.49, true}} {
		t.Run(fmt.Sprint(tc.ratio), func(t *testing.T) {
			w := newWorld(t, 2, cfg(2, api.OrderStopFirst, api.FailurePause))
			w.svc.Spec.Update.MaxFailureRatio = tc.ratio
			w.deploy("web:2")
			w.step() // the old tasks drain
			w.now = w.now.Add(time.Second)
			w.step() // and are replaced
			w.task(w.tasks[len(w.tasks)-1].ID).Status = api.TaskStatus{State: api.TaskFailed, Timestamp: w.now, Err: "exit code 1"}
			w.now = w.now.Add(time.Second)
			w.step()
			if fired := w.svc.Update.State == api.UpdatePaused; fired != tc.fires {
				t.Errorf("ratio %v: paused %v, want %v (%+v)", tc.ratio, fired, tc.fires, w.svc.Update)
			}
		})
	}
}

func TestMonitorWindow(t *testing.T) {
	for _, tc := range []struct {
		monitor time.Duration
		fails   bool
	}{{5 * time.Second, true}, {time.Second, false}} {
		t.Run(tc.monitor.String(), func(t *testing.T) {
			c := cfg(1, api.OrderStopFirst, api.FailurePause)
			c.Monitor = api.Duration(tc.monitor)
			w := newWorld(t, 1, c)
			w.deploy("crash:2") // healthy, then exits 2s after becoming ready
			for i := 0; i < 6; i++ {
				w.step()
				w.now = w.now.Add(time.Second)
			}
			if paused := w.svc.Update.State == api.UpdatePaused; paused != tc.fails {
				t.Errorf("monitor %s: paused %v, want %v (%+v)", tc.monitor, paused, tc.fails, w.svc.Update)
			}
		})
	}
}

func TestNewSpecCancelsAndSameSpecIsNoOp(t *testing.T) {
	w := newWorld(t, 3, cfg(1, api.OrderStopFirst, api.FailurePause))
	w.deploy("web:2")
	w.step()
	first := w.svc.Update.Target
	w.now = w.now.Add(time.Second)
	w.deploy("web:3") // a new commit while web:2 rolls out
	w.step()
	if w.svc.Update.Target == first || !w.svc.Update.StartedAt.Equal(w.now) {
		t.Fatalf("new spec did not start a new update: %+v", w.svc.Update)
	}
	w.run(time.Second, 100)
	if diff := cmp.Diff(map[string]int{"web:3": 3}, w.live()); diff != "" {
		t.Errorf("live (-want +got):\n%s", diff)
	}
	// Applying the same spec again changes nothing.
	w.svc.PreviousSpec = &w.svc.Spec
	if d := DecideUpdate(w.svc, w.tasks, w.nodes, nil, w.now.Add(time.Hour), DefaultDrainDelay); !d.Empty() {
		t.Errorf("identical spec: %+v", d)
	}
}

// A new leader reads the same store and decides the same thing: the
// updater keeps nothing in memory.
func TestResumeAfterLeaderChange(t *testing.T) {
	w := newWorld(t, 4, cfg(1, api.OrderStartFirst, api.FailureRollback))
	w.deploy("web:2")
	for i := 0; i < 3; i++ {
		w.step()
		w.now = w.now.Add(time.Second)
	}
	b, _ := json.Marshal(struct {
		Svc   api.Service
		Tasks []api.Task
	}{*w.svc, w.tasks})
	var restored struct {
		Svc   api.Service
		Tasks []api.Task
	}
	if err := json.Unmarshal(b, &restored); err != nil {
		t.Fatal(err)
	}
	want := DecideUpdate(w.svc, w.tasks, w.nodes, nil, w.now, DefaultDrainDelay)
	got := DecideUpdate(&restored.Svc, restored.Tasks, w.nodes, nil, w.now, DefaultDrainDelay)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decision after a restart differs (-before +after):\n%s", diff)
	}
	w.run(time.Second, 100)
	if w.svc.Update.State != api.UpdateCompleted {
		t.Errorf("state %s", w.svc.Update.State)
	}
}

// A task whose spec has no healthcheck but whose image has one (its node
// runs it and reports its health) is gated on it as on a compose one; a
// spec that disables the check is not.
func TestImageHealthcheckGatesUpdate(t *testing.T) {
	none := &api.Healthcheck{Test: []string{"NONE"}}
	cases := []struct {
		name      string
		image     string
		hc        *api.Healthcheck
		wantState api.UpdateState
		wantMsg   string
		wantLive  map[string]int
	}{
		{"passes its image's healthcheck", "hc:2", nil, api.UpdateCompleted, "update completed", map[string]int{"hc:2": 3}},
		// The managers do not know the image's timing: the default's.
		{"never passes its image's healthcheck", "hcslow:2", nil, api.UpdateRollbackCompleted,
			"rolled back: 1 of 1 updated tasks failed: not ready within 5m5s (running)", map[string]int{"web:1": 3}},
		{"disable switches the image's off", "hcslow:2", none, api.UpdateCompleted, "update completed", map[string]int{"hcslow:2": 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, 3, cfg(1, api.OrderStopFirst, api.FailureRollback))
			w.observe = func(when string) {
				for i := range w.tasks {
					tk := &w.tasks[i]
					if !tk.HealthChecked() || tk.Status.Health == api.HealthHealthy {
						continue
					}
					if tk.InLoadBalancer() || !tk.ReadyAt.IsZero() {
						t.Errorf("after %s: task %s (%s) health %s, yet balanced %v, ready at %v",
							when, tk.ID, tk.Spec.Container.Image, tk.Status.Health, tk.InLoadBalancer(), tk.ReadyAt)
					}
				}
			}
			w.change(w.svc, func(s *api.ServiceSpec) { s.Task.Container.Image, s.Task.Container.Healthcheck = tc.image, tc.hc })
			w.run(10*time.Second, 200)
			if w.svc.Update.State != tc.wantState || w.svc.Update.Message != tc.wantMsg {
				t.Errorf("state %s %q, want %s %q (log %v)", w.svc.Update.State, w.svc.Update.Message, tc.wantState, tc.wantMsg, w.log)
			}
			if diff := cmp.Diff(tc.wantLive, w.live()); diff != "" {
				t.Errorf("live (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIsReadyImageHealthcheck(t *testing.T) {
	hc := &api.Healthcheck{Test: []string{"CMD", "true"}}
	none := &api.Healthcheck{Test: []string{"NONE"}}
	tests := []struct {
		name   string
		hc     *api.Healthcheck
		health api.HealthState
		ready  bool
	}{
		{"no healthcheck at all", nil, api.HealthNone, true},
		{"image healthcheck starting", nil, api.HealthStarting, false},
		{"image healthcheck healthy", nil, api.HealthHealthy, true},
		{"image healthcheck unhealthy", nil, api.HealthUnhealthy, false},
		{"compose healthcheck not reported yet", hc, api.HealthNone, false},
		{"compose healthcheck healthy", hc, api.HealthHealthy, true},
		{"disabled", none, api.HealthNone, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tk := &api.Task{Status: api.TaskStatus{State: api.TaskRunning, Health: tc.health}}
			tk.Spec.Container.Healthcheck = tc.hc
			if got := isReady(tk); got != tc.ready {
				t.Errorf("isReady = %v, want %v", got, tc.ready)
			}
		})
	}
}
