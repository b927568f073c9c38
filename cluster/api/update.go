package api

import (
	"fmt"
	"strings"
	"time"
)

// UpdateState is where a rolling update or rollback stands.
type UpdateState uint8

const (
	UpdateNone UpdateState = iota
	UpdateUpdating
	UpdatePaused
	UpdateCompleted
	UpdateRollbackStarted
	UpdateRollbackPaused
	UpdateRollbackCompleted
	// UpdateWaiting is a rollout that has not started because a service it
	// comes after (ServiceSpec.RolloutAfter) is still rolling out or not
	// ready; Message names them.
	UpdateWaiting
)

var updateStateNames = []string{"", "updating", "paused", "completed",
	"rollback_started", "rollback_paused", "rollback_completed", "waiting"}

func (s UpdateState) String() string { return enumString(updateStateNames, s) }

// ParseUpdateState parses an update state name.
func ParseUpdateState(s string) (UpdateState, error) {
	return parseEnum[UpdateState]("update state", updateStateNames, s)
}
func (s UpdateState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
func (s *UpdateState) UnmarshalText(b []byte) (err error) {
	*s, err = ParseUpdateState(string(b))
	return err
}

// IsRollback reports whether the state belongs to a rollback.
func (s UpdateState) IsRollback() bool {
	return s == UpdateRollbackStarted || s == UpdateRollbackPaused || s == UpdateRollbackCompleted
}

// UpdateStatus is persisted progress of a rollout, so that a new leader
// continues where the old one stopped, and so that any manager can show
// it (Progress).
type UpdateStatus struct {
	State       UpdateState `json:"state"`
	StartedAt   time.Time   `json:"started_at"`
	CompletedAt time.Time   `json:"completed_at,omitzero"`
	// Message says why the rollout is where it is: "update started",
	// "waiting for shop_db", the failure that paused or rolled it back.
	Message string `json:"message,omitempty"`
	// Updated and Failed count the tasks of this rollout: Failed/Updated
	// is the failure ratio that update_config.max_failure_ratio bounds.
	Updated uint64 `json:"updated"`
	Failed  uint64 `json:"failed"`
	// Done and Total count slots (nodes, for a global service): Total is
	// how many the rollout brings to its target, Done how many of them run
	// a ready task of the target already. Zero Total: not counted yet.
	Done  uint64 `json:"done,omitempty"`
	Total uint64 `json:"total,omitempty"`
	// NextBatchAt is when the next batch starts while the rollout waits
	// out update_config.delay after the last one; zero otherwise.
	NextBatchAt time.Time `json:"next_batch_at,omitzero"`
	// Target identifies the task spec this rollout moves to: a service
	// whose spec no longer matches it starts a new rollout (a new spec
	// cancels the one in flight; the same spec again changes nothing).
	Target string `json:"target,omitempty"`
}

// Progress is the rollout in one line for people, as of now, e.g.
// "updating 4/10, 1 failure, next batch in 3s", "rolling back 0/4: 2 of 2
// updated tasks failed: exit code 1", "waiting for shop_db", or, for a
// rollout that stopped, its message ("update paused: …"). It is "" for
// a nil status or one without a state.
func (u *UpdateStatus) Progress(now time.Time) string {
	if u == nil || u.State == UpdateNone {
		return ""
	}
	var head string
	switch u.State {
	case UpdateUpdating:
		head = "updating"
	case UpdateRollbackStarted:
		head = "rolling back"
	default:
		if u.Message != "" {
			return u.Message
		}
		return u.State.String()
	}
	if u.Total > 0 {
		head += fmt.Sprintf(" %d/%d", u.Done, u.Total)
	}
	parts := []string{head}
	switch {
	case u.Failed == 1:
		parts = append(parts, "1 failure")
	case u.Failed > 1:
		parts = append(parts, fmt.Sprintf("%d failures", u.Failed))
	}
	if wait := u.NextBatchAt.Sub(now); !u.NextBatchAt.IsZero() && wait > 0 {
		// Whole seconds, rounded up: "in 0s" would be a lie.
		parts = append(parts, "next batch in "+(wait+time.Second-1).Truncate(time.Second).String())
	}
	line := strings.Join(parts, ", ")
	if u.State == UpdateRollbackStarted && u.Message != "" {
		line += ": " + u.Message
	}
	return line
}
