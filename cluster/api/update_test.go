package api

import (
	"testing"
	"time"
)

func TestUpdateProgress(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		u    *UpdateStatus
		want string
	}{
		{"none", nil, ""},
		{"updating, counts, a failure, next batch", &UpdateStatus{State: UpdateUpdating, Done: 4, Total: 10, Failed: 1, NextBatchAt: now.Add(2*time.Second + time.Millisecond)},
			"updating 4/10, 1 failure, next batch in 3s"},
		{"failures", &UpdateStatus{State: UpdateUpdating, Done: 4, Total: 10, Failed: 3}, "updating 4/10, 3 failures"},
		{"next batch due", &UpdateStatus{State: UpdateUpdating, Done: 2, Total: 10, NextBatchAt: now}, "updating 2/10"},
		{"next batch in minutes", &UpdateStatus{State: UpdateUpdating, Done: 2, Total: 10, NextBatchAt: now.Add(90 * time.Second)}, "updating 2/10, next batch in 1m30s"},
		{"not counted yet", &UpdateStatus{State: UpdateUpdating, Updated: 2, Failed: 1}, "updating, 1 failure"},
		{"rolling back, with why", &UpdateStatus{State: UpdateRollbackStarted, Done: 1, Total: 4, Message: "2 of 2 updated tasks failed: exit code 1"},
			"rolling back 1/4: 2 of 2 updated tasks failed: exit code 1"},
		{"waiting", &UpdateStatus{State: UpdateWaiting, Message: "waiting for shop_db"}, "waiting for shop_db"},
		{"paused", &UpdateStatus{State: UpdatePaused, Done: 1, Total: 4, Message: "update paused: 1 of 1 updated tasks failed: exit code 1"},
			"update paused: 1 of 1 updated tasks failed: exit code 1"},
		{"rollback paused", &UpdateStatus{State: UpdateRollbackPaused, Message: "rollback paused: 1 of 1 updated tasks failed: exit code 1"},
			"rollback paused: 1 of 1 updated tasks failed: exit code 1"},
		{"rolled back", &UpdateStatus{State: UpdateRollbackCompleted, Message: "rolled back: 1 of 1 updated tasks failed: exit code 1"},
			"rolled back: 1 of 1 updated tasks failed: exit code 1"},
		{"completed without a message", &UpdateStatus{State: UpdateCompleted}, "completed"},
	}
	for _, tc := range cases {
		if got := tc.u.Progress(now); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestUpdateStateNames(t *testing.T) {
	for i, n := range updateStateNames {
		s, err := ParseUpdateState(n)
		if err != nil || s.String() != n || int(s) != i {
			t.Errorf("%q: %v %v", n, s, err)
		}
	}
	rollback := map[UpdateState]bool{UpdateRollbackStarted: true, UpdateRollbackPaused: true, UpdateRollbackCompleted: true}
	for s := UpdateNone; s <= UpdateWaiting; s++ {
		if s.IsRollback() != rollback[s] {
			t.Errorf("%s: IsRollback %v", s, s.IsRollback())
		}
	}
}
