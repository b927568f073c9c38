package agent

import (
	"context"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// Executor turns tasks into containers on this node. Every method is
// idempotent: calling it again after a success, or after the agent
// restarted, finds the work done and returns nil.
type Executor interface {
	// Prepare makes the task ready to start: it fetches the image, creates
	// the task's mounts and secret files, and creates its container. It
	// leaves nothing behind when it fails.
	Prepare(ctx context.Context, t *api.Task, files Files) error
	// Start starts the task's process. A task already running is left alone.
	Start(ctx context.Context, taskID string) error
	// Remove stops the task's process if it runs (its stop signal, then
	// SIGKILL after its grace period) and removes everything the task held
	// on the node except its log. Removing an unknown task returns nil.
	Remove(ctx context.Context, taskID string) (Exit, error)
	// Observe reports every container the executor manages on this node.
	Observe(ctx context.Context) ([]Observed, error)
}

// ChangeNotifier is an optional Executor ability: Changes is signalled
// (a non-blocking send) whenever a container may have changed on its own:
// its process exited, its health verdict changed. The agent then observes
// at once instead of at its next interval, so that a killed task is
// reported, and replaced, without waiting for a poll.
type ChangeNotifier interface {
	Changes() <-chan struct{}
}

// LogRemover is an optional Executor ability: removing a task's log once
// the task is no longer assigned to the node.
type LogRemover interface {
	RemoveLog(taskID string) error
}

// Files are the secret and config payloads a task's spec refers to, by
// cluster-wide name. Secret plaintext never prints (api.SecretBytes).
type Files struct {
	Secrets map[string]api.SecretBytes
	Configs map[string][]byte
}

// ContainerState is what an executor observed of a task's process.
type ContainerState uint8

const (
	ContainerCreated ContainerState = iota // container exists, process not started
	ContainerRunning                       // process runs (or is paused)
	ContainerExited                        // process exited; ExitCode is valid
)

var containerStateNames = []string{"created", "running", "exited"}

func (s ContainerState) String() string {
	if int(s) < len(containerStateNames) {
		return containerStateNames[s]
	}
	return "unknown"
}

// Observed is one container as the executor sees it.
type Observed struct {
	TaskID      string
	ContainerID string
	State       ContainerState
	ExitCode    int
	ExitedAt    time.Time
	// Health is HealthNone for a container without a healthcheck.
	Health api.HealthState
	// HealthMessage explains an unhealthy verdict
	// ("unhealthy: 3 consecutive failures: …").
	HealthMessage string
	// Warning is what is wrong with a running container that does not
	// stop it (see api.TaskStatus.Warning).
	Warning string
}

// Exit is how a removed task's process ended.
type Exit struct {
	// Stopped is set when Remove had to stop a running process.
	Stopped bool
	// Killed is set when the process outlived its grace period.
	Killed   bool
	ExitCode int
}
