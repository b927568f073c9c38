package api

import "time"

// TaskState is a task's place in its life. States are ordered: a task only
// ever moves forward, and every state from TaskComplete on is terminal.
type TaskState uint8

const (
	TaskNew       TaskState = iota // created by the orchestrator
	TaskPending                    // waiting for the scheduler
	TaskAssigned                   // placed on a node
	TaskPreparing                  // the node pulls the image and prepares mounts
	TaskStarting                   // the container is starting
	TaskRunning                    // the process runs
	TaskComplete                   // exited 0 (jobs) or stopped as desired
	TaskShutdown                   // stopped because it was no longer wanted
	TaskFailed                     // exited non-zero, or could not start
	TaskRejected                   // the node could not run it at all
	TaskOrphaned                   // its node was lost
	TaskRemove                     // marked for deletion
)

var taskStateNames = []string{"new", "pending", "assigned", "preparing", "starting",
	"running", "complete", "shutdown", "failed", "rejected", "orphaned", "remove"}

func (s TaskState) String() string { return enumString(taskStateNames, s) }

// ParseTaskState parses a task state name.
func ParseTaskState(s string) (TaskState, error) {
	return parseEnum[TaskState]("task state", taskStateNames, s)
}
func (s TaskState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
func (s *TaskState) UnmarshalText(b []byte) (err error) {
	*s, err = ParseTaskState(string(b))
	return err
}

// Terminal reports whether no further transition is possible.
func (s TaskState) Terminal() bool { return s >= TaskComplete }

// Task is one instance of a service: a slot of a replicated service or the
// task of a global service on one node.
type Task struct {
	Meta
	ServiceID   string `json:"service_id"`
	ServiceName string `json:"service_name"`
	// Slot numbers replicated tasks from 1; global tasks use 0 and NodeID.
	Slot   uint64 `json:"slot,omitempty"`
	NodeID string `json:"node_id,omitempty"`
	// SpecVersion is the service Version the Spec was taken from.
	SpecVersion  uint64     `json:"spec_version"`
	Spec         TaskSpec   `json:"spec"`
	DesiredState TaskState  `json:"desired_state"`
	Status       TaskStatus `json:"status"`
	// Addr is the task's address in the overlay, in CIDR notation of its
	// node's subnet ("10.64.3.7/24"). The allocator gives it when the task
	// is placed, so managers know it before the task starts; it is the
	// task's one address on every network it joins (networks are isolation
	// domains, not separate segments). Empty until placed.
	Addr string `json:"addr,omitempty"`
	// ReadyAt is when the task was first seen running and, if it has a
	// healthcheck, healthy: an update's monitor window counts from it.
	ReadyAt time.Time `json:"ready_at,omitzero"`
	// Restarts are the end times of the tasks this one replaced in its slot,
	// within the restart policy's window: the restart history lives in the
	// store, so a new leader counts attempts where the old one stopped.
	Restarts []time.Time `json:"restarts,omitempty"`
	// Endpoint is the service's endpoint spec when the task was made: a
	// task whose endpoint differs from the service's is replaced by an
	// update. Nil (tasks made before it was recorded) never differs.
	Endpoint *EndpointSpec `json:"endpoint,omitempty"`
	// DrainingSince is when the orchestrator took the task out of its
	// service's load-balancing set ahead of stopping it, for any reason
	// (see InLoadBalancer); zero while it is not draining. It stays set
	// once the task is stopped.
	DrainingSince time.Time `json:"draining_since,omitzero"`
	// Replaced is set when the task ended on its own (failed, was
	// rejected, or exited where its service restarts it) and the
	// orchestrator created its replacement in its slot (or on its node):
	// its desired state then moved to shutdown, as Swarm's does, so that
	// no reader takes it for a task still wanted. Unlike a task the
	// orchestrator stopped, it ended by itself: a rollout counts it as a
	// failure, and its node keeps it (and its log) while it is history.
	Replaced bool `json:"replaced,omitempty"`
}

// InLoadBalancer reports whether the task is in its service's
// load-balancing set: the tasks the network plane sends the service's
// traffic to (VIP, ingress and host-mode ports, DNS tasks.<service>).
// It is a pure function of the stored task, so every manager and every
// node computes the same set from the same store state.
//
// A task joins the set once it is wanted running, runs, and passed its
// healthcheck if it has one (HealthChecked); it leaves as soon as any of
// that stops being true, or when the orchestrator marks it draining. Whatever stops a task
// in the set (a rolling update, a scale-down, a drained, down or removed
// node, a removed service, a global service's node that no longer
// matches), the orchestrator commits DrainingSince before, never with,
// the change that tells the node to stop the task, and stops it only the
// drain delay later (orchestrator.Config.DrainDelay, 500 ms by default),
// so that traffic has moved away before the task gets its stop signal.
func (t *Task) InLoadBalancer() bool {
	if t.DesiredState != TaskRunning || !t.DrainingSince.IsZero() || t.Status.State != TaskRunning {
		return false
	}
	return !t.HealthChecked() || t.Status.Health == HealthHealthy
}

// HealthChecked reports whether a healthcheck judges the task: its spec
// has one, or its node reports a health (not HealthNone), as for a spec
// without one whose image has a HEALTHCHECK, which the node runs. The node
// reports that health from the first report of the task running on, so a
// running task is never taken for one without a check. A spec that
// disables the check (test NONE) switches the image's off too.
func (t *Task) HealthChecked() bool {
	return !t.Spec.Container.Healthcheck.Disabled() || t.Status.Health != HealthNone
}

// TaskStatus is the truth a node reports about a task. Every failure a user
// must act on is in Message or Err, never only in a log.
type TaskStatus struct {
	State     TaskState   `json:"state"`
	Timestamp time.Time   `json:"timestamp"`
	Message   string      `json:"message,omitempty"`
	Err       string      `json:"err,omitempty"`
	ExitCode  int         `json:"exit_code,omitempty"`
	Health    HealthState `json:"health"`
	// Warning is what is wrong with a task that runs on (a host port it
	// publishes that another process took while the executor restarted).
	Warning string `json:"warning,omitempty"`
	// ContainerID names the container on the node, for adoption on restart.
	ContainerID string `json:"container_id,omitempty"`
}
