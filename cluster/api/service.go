package api

import (
	"fmt"
	"strconv"
)

// Service is a desired workload and the progress of its rollout.
type Service struct {
	Meta
	Spec ServiceSpec `json:"spec"`
	// PreviousSpec is the spec before the last update; a rollback returns to it.
	PreviousSpec *ServiceSpec `json:"previous_spec,omitempty"`
	// Update is the state of the rolling update or rollback in flight, if any.
	Update *UpdateStatus `json:"update,omitempty"`
	// Endpoint is what the allocator gave the service: VIPs and published ports.
	Endpoint *Endpoint `json:"endpoint,omitempty"`
}

// ServiceSpec is everything a stack file says about one service.
type ServiceSpec struct {
	// Name is the cluster-wide name, "<stack>_<service>" for stack services.
	Name   string            `json:"name"`
	Stack  string            `json:"stack,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`

	Mode ServiceMode `json:"mode"`
	// Replicas is the number of slots of a replicated service.
	Replicas uint64 `json:"replicas,omitempty"`
	// MaxConcurrent and TotalCompletions shape a replicated job.
	MaxConcurrent    uint64 `json:"max_concurrent,omitempty"`
	TotalCompletions uint64 `json:"total_completions,omitempty"`

	Task     TaskSpec            `json:"task"`
	Update   UpdateConfig        `json:"update_config"`
	Rollback UpdateConfig        `json:"rollback_config"`
	Endpoint EndpointSpec        `json:"endpoint"`
	Networks []NetworkAttachment `json:"networks,omitempty"`
	// DependsOn names other services of the same stack (short names).
	DependsOn []string `json:"depends_on,omitempty"`
	// RolloutAfter are the full names of the services whose rollout this
	// one's waits for: its DependsOn, and every service of the stacks its
	// stack depends on. The orchestrator starts the service's tasks, or an
	// update of them, only once each of these has finished its own rollout
	// with every task ready. reconcile fills it in (DesiredState).
	RolloutAfter []string `json:"rollout_after,omitempty"`
	// Conditions are depends_on's conditions, by short name as DependsOn
	// (reconcile keys RolloutAfter's by full name in the same map): what
	// the dependent waits for. A service named without one is waited for
	// as DependHealthy.
	Conditions map[string]DependCondition `json:"conditions,omitempty"`
}

// DependCondition is what a service waits for of one it depends on, as
// compose's depends_on conditions say.
type DependCondition string

const (
	// DependStarted: every task of the dependency's current spec runs
	// (service_started, compose's default).
	DependStarted DependCondition = "started"
	// DependHealthy: the dependency finished its rollout with every task
	// ready: running, and healthy if it has a healthcheck
	// (service_healthy).
	DependHealthy DependCondition = "healthy"
	// DependCompleted: the dependency, a job, completed
	// (service_completed_successfully).
	DependCompleted DependCondition = "completed"
)

// TaskSpec is what every task of a service runs.
type TaskSpec struct {
	Container ContainerSpec        `json:"container"`
	Resources ResourceRequirements `json:"resources,omitzero"`
	Restart   RestartPolicy        `json:"restart_policy"`
	Placement Placement            `json:"placement,omitzero"`
	// ForceUpdate changes to roll tasks whose spec is otherwise unchanged.
	ForceUpdate uint64 `json:"force_update,omitempty"`
}

// ContainerSpec is the container a task runs.
type ContainerSpec struct {
	Image string `json:"image"`
	// Command replaces the image's entrypoint; Args replace its cmd.
	Command         []string          `json:"command,omitempty"`
	Args            []string          `json:"args,omitempty"`
	Env             []string          `json:"env,omitempty"` // KEY=VALUE, sorted
	Dir             string            `json:"dir,omitempty"`
	User            string            `json:"user,omitempty"`
	Groups          []string          `json:"groups,omitempty"`
	Hostname        string            `json:"hostname,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Init            *bool             `json:"init,omitempty"`
	ReadOnly        bool              `json:"read_only,omitempty"`
	StopSignal      string            `json:"stop_signal,omitempty"`
	StopGracePeriod Duration          `json:"stop_grace_period"`
	Sysctls         map[string]string `json:"sysctls,omitempty"`
	Ulimits         []Ulimit          `json:"ulimits,omitempty"`
	CapAdd          []string          `json:"cap_add,omitempty"`
	CapDrop         []string          `json:"cap_drop,omitempty"`
	ExtraHosts      []string          `json:"extra_hosts,omitempty"` // "host:ip"
	Mounts          []Mount           `json:"mounts,omitempty"`
	Secrets         []FileRef         `json:"secrets,omitempty"`
	Configs         []FileRef         `json:"configs,omitempty"`
	Healthcheck     *Healthcheck      `json:"healthcheck,omitempty"`

	// Privileged, SeccompUnconfined and AppArmorUnconfined lift the
	// container's confinement; each needs a node whose NodePolicy allows
	// it (Needs).
	Privileged         bool `json:"privileged,omitempty"`
	SeccompUnconfined  bool `json:"seccomp_unconfined,omitempty"`
	AppArmorUnconfined bool `json:"apparmor_unconfined,omitempty"`
	// NoNewPrivileges keeps the process from gaining privileges (setuid
	// binaries, file capabilities).
	NoNewPrivileges bool `json:"no_new_privileges,omitempty"`
}

// Ulimit is one resource limit (nofile, nproc, …).
type Ulimit struct {
	Name string `json:"name"`
	Soft int64  `json:"soft"`
	Hard int64  `json:"hard"`
}

// Mount is a volume, bind or tmpfs mount.
type Mount struct {
	Type     MountType `json:"type"`
	Source   string    `json:"source,omitempty"` // volume name or host path
	Target   string    `json:"target"`
	ReadOnly bool      `json:"read_only,omitempty"`
	// VolumeOptions are the named volume's driver_opts (type, o,
	// device): the node mounts that filesystem as the volume, as Docker's
	// local driver does. Empty: a directory of the node.
	VolumeOptions map[string]string `json:"volume_options,omitempty"`
	// NoCopy skips copying the image's content into a new volume.
	NoCopy    bool   `json:"nocopy,omitempty"`
	TmpfsSize Bytes  `json:"tmpfs_size,omitempty"`
	TmpfsMode uint32 `json:"tmpfs_mode,omitempty"`
}

// FileRef places a secret or config in a task's filesystem.
type FileRef struct {
	// Name is the cluster-wide secret or config name.
	Name string `json:"name"`
	// Version is the DataHash of the content the task gets: a task keeps
	// the version it was made with until it is replaced, and a service
	// whose version changes rolls (reconcile pins it from the desired
	// state). Empty: the object's current content (an external object).
	Version string   `json:"version,omitempty"`
	Target  string   `json:"target"` // absolute path in the container
	UID     string   `json:"uid"`
	GID     string   `json:"gid"`
	Mode    FileMode `json:"mode"`
}

// Key names the content a reference wants: the name, and the version
// when it is pinned. Assignments carry the payloads by key, so that tasks
// of one node may hold two versions of an object during a rollout.
func (r FileRef) Key() string {
	if r.Version == "" {
		return r.Name
	}
	return VersionName(r.Name, r.Version)
}

// VersionName is the name of the object that keeps an earlier version of
// a secret or config for the tasks that still refer to it.
func VersionName(name, version string) string { return name + "@" + version }

// FileMode is a file permission that prints in octal ("0444").
type FileMode uint32

func (m FileMode) String() string { return fmt.Sprintf("%#04o", uint32(m)) }

func (m FileMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

func (m *FileMode) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 8, 32)
	if err != nil {
		return fmt.Errorf("invalid file mode %q: want octal such as 0444", b)
	}
	*m = FileMode(v)
	return nil
}

// Healthcheck is a command run inside the container to judge its health.
type Healthcheck struct {
	// Test is ["CMD", args...], ["CMD-SHELL", command] or ["NONE"].
	Test          []string `json:"test"`
	Interval      Duration `json:"interval"`
	Timeout       Duration `json:"timeout"`
	Retries       uint64   `json:"retries"`
	StartPeriod   Duration `json:"start_period"`
	StartInterval Duration `json:"start_interval"`
}

// Disabled reports whether the check is switched off (test NONE).
func (h *Healthcheck) Disabled() bool {
	return h == nil || len(h.Test) == 0 || h.Test[0] == "NONE"
}

// ResourceRequirements are a task's limits (enforced by cgroups) and its
// reservations (what the scheduler sets aside on a node).
type ResourceRequirements struct {
	Limits       Resources `json:"limits,omitzero"`
	Reservations Resources `json:"reservations,omitzero"`
}

// Resources is an amount of CPU, memory and process ids.
type Resources struct {
	NanoCPUs NanoCPUs `json:"cpus,omitempty"`
	Memory   Bytes    `json:"memory,omitempty"`
	Pids     int64    `json:"pids,omitempty"`
}

// RestartPolicy says when and how often a slot's task is replaced.
type RestartPolicy struct {
	Condition RestartCondition `json:"condition"`
	Delay     Duration         `json:"delay"`
	// MaxAttempts is the number of restarts allowed within Window; 0 is unlimited.
	MaxAttempts uint64 `json:"max_attempts"`
	// Window is the period over which attempts are counted; 0 is forever.
	Window Duration `json:"window"`
}

// Placement restricts and spreads where tasks run.
type Placement struct {
	Constraints []Constraint `json:"constraints,omitempty"`
	// Preferences spread tasks evenly over the values of node labels, in order.
	Preferences        []SpreadOver `json:"preferences,omitempty"`
	MaxReplicasPerNode uint64       `json:"max_replicas_per_node,omitempty"`
	Platforms          []Platform   `json:"platforms,omitempty"`
}

// SpreadOver is a spread placement preference ("node.labels.zone").
type SpreadOver struct {
	Spread string `json:"spread"`
}

// Platform is an OS and CPU architecture.
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
}

// UpdateConfig shapes a rolling update or a rollback.
type UpdateConfig struct {
	// Parallelism is how many tasks change at once; 0 is all at once.
	Parallelism uint64 `json:"parallelism"`
	// Delay is the pause between batches.
	Delay         Duration      `json:"delay"`
	FailureAction FailureAction `json:"failure_action"`
	// Monitor is how long a new task is watched for failure after it starts.
	Monitor Duration `json:"monitor"`
	// MaxFailureRatio is the fraction of failed tasks tolerated (0 to 1).
	MaxFailureRatio float64     `json:"max_failure_ratio"`
	Order           UpdateOrder `json:"order"`
	// StartTimeout bounds the wait for a new task to become ready; past it
	// the task counts as failed. 0 derives it from the healthcheck and
	// Monitor (see the orchestrator), unlike Swarm, which waits forever.
	StartTimeout Duration `json:"start_timeout,omitempty"`
}

// EndpointSpec is how a service is reached.
type EndpointSpec struct {
	Mode  EndpointMode `json:"mode"`
	Ports []PortConfig `json:"ports,omitempty"`
}

// PortConfig publishes a task port.
type PortConfig struct {
	Name     string   `json:"name,omitempty"`
	Protocol Protocol `json:"protocol"`
	Target   uint32   `json:"target"`
	// Published is the port on the nodes; 0 lets the cluster choose one.
	Published uint32      `json:"published,omitempty"`
	Mode      PublishMode `json:"mode"`
}

// NetworkAttachment attaches a service to a network.
type NetworkAttachment struct {
	// Target is the cluster-wide network name.
	Target  string   `json:"target"`
	Aliases []string `json:"aliases,omitempty"`
}

// Endpoint is what the allocator assigned to a service.
type Endpoint struct {
	// VIP is the service's virtual address (vip endpoint mode) from the
	// cluster's VIP pool, the same on every network the service is on. A
	// connection to it, on any port, goes to one of the service's tasks in
	// the load-balancing set, on the same port, as Swarm's VIPs do.
	VIP   string       `json:"vip,omitempty"`
	Ports []PortConfig `json:"ports,omitempty"` // with Published filled in
	// Problem is what the allocator could not give the service (a VIP
	// from a full pool, a published port from a full range); "" when
	// nothing is missing. A service with a problem is not rolled out.
	Problem string `json:"problem,omitempty"`
}
