package containerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/api"
)

// Defaults of Config.
const (
	DefaultAddress     = "/run/containerd/containerd.sock"
	DefaultNamespace   = "gitorc"
	DefaultSnapshotter = "overlayfs"
	DefaultLogMaxSize  = 10 << 20
	DefaultLogMaxFiles = 3
	// DefaultTasksPerShim: 50 replicas of a service start in 2 shims,
	// whose creates run in parallel: as fast as 5 shims on 2 vCPUs, for
	// 3 shims' memory less (shim.go).
	DefaultTasksPerShim = 25
)

// TaskNetwork attaches tasks' network namespaces to the node's network plane.
type TaskNetwork interface {
	// Attach connects the namespace at nsPath with the task's address (Task.Addr, CIDR) and returns
	// the nameserver the task's resolv.conf names.
	Attach(ctx context.Context, taskID, addr, nsPath string) (nameserver string, err error)
	Detach(ctx context.Context, taskID, nsPath string) error
}

// Config configures an Executor.
type Config struct {
	// DataDir holds everything the executor keeps on the node; absolute.
	DataDir string
	// Address is the containerd socket to use when it is reachable
	// (default DefaultAddress). When it is not, the executor starts its own
	// containerd with its socket under DataDir.
	Address string
	// ContainerdBinary is the containerd executable for an own daemon
	// (default "containerd", looked up in PATH).
	ContainerdBinary string
	Namespace        string
	Snapshotter      string
	// InsecureRegistries ("host:port") are pulled from over plain HTTP.
	InsecureRegistries []string
	// AuthFile is a docker-style config.json with registry credentials.
	AuthFile string
	// HostNetwork runs containers in the host network namespace. By default
	// each container has a network namespace of its own with loopback only.
	HostNetwork bool
	// Network, when set, attaches the namespace of each task that has an
	// address (Task.Addr) to the node's network plane; the namespace is
	// bound at DataDir/netns/<task ID>. HostNetwork wins over it.
	Network TaskNetwork
	// LogMaxSize is the size at which a task log is rotated; LogMaxFiles
	// the number of rotated files kept.
	LogMaxSize  int64
	LogMaxFiles int
	// TasksPerShim is how many slots of a service share one runc shim on
	// the node (slots 1…K one, K+1…2K the next; default
	// DefaultTasksPerShim; shim.go).
	TasksPerShim int
	// Runtime is the OCI runtime binary the runc shim runs (a name looked
	// up in PATH, or a path): "runc", "crun", or a wrapper of either.
	// Empty: crun when a probe at New finds it works here, else runc
	// (runtime.go).
	Runtime string
	// Policy is what this node lets containers have beyond the defaults
	// (binds of host paths, capabilities, sysctls, privileged,
	// unconfined profiles): Prepare rejects a task that needs more
	// (policy.go), whatever the managers decided.
	Policy api.NodePolicy
	// StartTimeout bounds waiting for an own containerd to serve (default 30s).
	StartTimeout time.Duration
	Logger       *slog.Logger
	Clock        agent.Clock
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" || !filepath.IsAbs(c.DataDir) {
		errs = append(errs, fmt.Errorf("data dir %q must be an absolute path", c.DataDir))
	}
	if c.LogMaxSize < 0 || c.LogMaxFiles < 0 || c.StartTimeout < 0 || c.TasksPerShim < 0 {
		errs = append(errs, errors.New("log limits, start timeout and tasks per shim must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("executor config: %w", err)
	}
	return nil
}

func (c *Config) withDefaults() Config {
	d := *c
	if d.Address == "" {
		d.Address = DefaultAddress
	}
	if d.ContainerdBinary == "" {
		d.ContainerdBinary = "containerd"
	}
	if d.Namespace == "" {
		d.Namespace = DefaultNamespace
	}
	if d.Snapshotter == "" {
		d.Snapshotter = DefaultSnapshotter
	}
	if d.LogMaxSize == 0 {
		d.LogMaxSize = DefaultLogMaxSize
	}
	if d.TasksPerShim == 0 {
		d.TasksPerShim = DefaultTasksPerShim
	}
	if d.LogMaxFiles == 0 {
		d.LogMaxFiles = DefaultLogMaxFiles
	}
	if d.StartTimeout == 0 {
		d.StartTimeout = 30 * time.Second
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Clock == nil {
		d.Clock = agent.RealClock{}
	}
	return d
}
