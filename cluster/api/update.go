package api

import "time"

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
)

var updateStateNames = []string{"", "updating", "paused", "completed",
	"rollback_started", "rollback_paused", "rollback_completed"}

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
func (s UpdateState) IsRollback() bool { return s >= UpdateRollbackStarted }

// UpdateStatus is persisted progress of a rollout, so that a new leader
// continues where the old one stopped.
type UpdateStatus struct {
	State       UpdateState `json:"state"`
	StartedAt   time.Time   `json:"started_at"`
	CompletedAt time.Time   `json:"completed_at,omitzero"`
	Message     string      `json:"message,omitempty"`
	// Updated and Failed count the tasks of this rollout.
	Updated uint64 `json:"updated"`
	Failed  uint64 `json:"failed"`
	// Target identifies the task spec this rollout moves to: a service
	// whose spec no longer matches it starts a new rollout (a new spec
	// cancels the one in flight; the same spec again changes nothing).
	Target string `json:"target,omitempty"`
}
