package containerd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"

	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/api"
)

var _ agent.Executor = (*Executor)(nil)
var _ agent.LogRemover = (*Executor)(nil)

// Container labels the executor sets; the task ID label marks gitorc's
// containers and lets a restarted agent find them.
const (
	LabelTaskID       = "gitorc.task.id"
	LabelServiceID    = "gitorc.service.id"
	LabelServiceName  = "gitorc.service.name"
	LabelSlot         = "gitorc.task.slot"
	labelStopSignal   = "gitorc.stop-signal"
	labelStopGrace    = "gitorc.stop-grace-period"
	labelHealthcheck  = "gitorc.healthcheck"
	labelReserveCPUs  = "gitorc.reservations.cpus"
	labelReserveBytes = "gitorc.reservations.memory"
)

// Log keys.
const (
	logKeyTask  = "task"
	logKeyImage = "image"
	logKeyErr   = "err"
)

// idRe is containerd's identifier rule; task IDs become container IDs.
var idRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,75}$`)

// Executor runs tasks as containerd containers. Create it with New, run its
// background work with Run, and Close it when done.
type Executor struct {
	cfg    Config
	log    *slog.Logger
	client *client.Client
	daemon *daemon // nil when an existing containerd is used
	hosts  docker.RegistryHosts
	// runtime is the OCI runtime binary of the containers it creates.
	runtime string

	bg       context.Context // background work (healthchecks)
	bgCancel context.CancelFunc
	bgWG     sync.WaitGroup

	shims  shimGroups // tasks of one shim group are created and deleted one at a time
	ports  portHolds  // host-mode ports of the tasks that run here
	logins *registryLogins
	logs   taskLogs // readers of the tasks' stdout and stderr (taskio.go)

	changes chan struct{} // Changes (changes.go)
	procs   procCache     // the tasks' process states (procs.go)
	ctrs    ctrCache      // the containers' labels (procs.go)

	mu      sync.Mutex
	health  map[string]*monitor // by task ID
	pulling map[string]*pull    // by image reference
	closed  bool
}

// New connects to containerd at cfg.Address, or starts a containerd of its
// own under cfg.DataDir when nothing answers there.
func New(ctx context.Context, cfg Config) (*Executor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	for _, d := range []string{"tasks", "volumes", "logs", "fifo"} {
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("executor: %w", err)
		}
	}
	logins := &registryLogins{}
	hosts, err := registryHosts(cfg.InsecureRegistries, cfg.AuthFile, logins.get)
	if err != nil {
		return nil, fmt.Errorf("executor: %w", err)
	}
	e := &Executor{cfg: cfg, log: cfg.Logger, hosts: hosts, logins: logins,
		health: map[string]*monitor{}, pulling: map[string]*pull{}, changes: make(chan struct{}, 1)}
	e.bg, e.bgCancel = context.WithCancel(context.Background())

	addr := cfg.Address
	if !reachable(addr) {
		e.daemon = newDaemon(filepath.Join(cfg.DataDir, "containerd"), cfg.ContainerdBinary, cfg.Logger, cfg.Clock)
		addr = e.daemon.socket()
		// One a killed run of this executor left behind is stopped: this
		// run supervises its own (and stops it when it ends).
		if !reachable(addr) || e.daemon.stopOrphan(10*time.Second) {
			if err := e.daemon.start(ctx, cfg.StartTimeout); err != nil {
				return nil, fmt.Errorf("executor: no containerd at %s: %w", cfg.Address, err)
			}
		} else {
			e.daemon = nil // someone else's: used, not supervised
		}
	}
	c, err := client.New(addr, client.WithDefaultNamespace(cfg.Namespace), client.WithTimeout(cfg.StartTimeout))
	if err != nil {
		e.stopDaemon()
		return nil, fmt.Errorf("executor: connect %s: %w", addr, err)
	}
	if _, err := c.Version(ctx); err != nil {
		_ = c.Close()
		e.stopDaemon()
		return nil, fmt.Errorf("executor: connect %s: %w", addr, err)
	}
	e.client = c
	e.runtime = cfg.Runtime
	if e.runtime == "" {
		e.runtime = chooseRuntime(func(bin string) bool {
			err := probeRuntime(ctx, bin)
			if err != nil {
				e.log.Info("OCI runtime does not work here", "runtime", bin, logKeyErr, err)
			}
			return err == nil
		})
		e.log.Info("OCI runtime", "runtime", e.runtime)
	}
	// Read on the output of the tasks a previous run started.
	if _, err := e.listTasks(ctx); err != nil {
		e.log.Warn("attach task output", logKeyErr, err)
	}
	return e, nil
}

// Client returns the containerd client, for tests and tools.
func (e *Executor) Client() *client.Client { return e.client }

// Address is the socket of the containerd in use.
func (e *Executor) Address() string {
	if e.daemon != nil {
		return e.daemon.socket()
	}
	return e.cfg.Address
}

func (e *Executor) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, e.cfg.Namespace)
}

// Run supervises the own containerd (restarting it when it exits),
// follows the tasks' exits (Changes) and rotates task logs until ctx ends; then it stops the healthchecks and the
// own containerd. Containers keep running.
func (e *Executor) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if e.daemon != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.daemon.supervise(ctx, e.cfg.StartTimeout, func() {
				if err := e.client.Reconnect(); err != nil {
					e.log.Warn("reconnect containerd", logKeyErr, err)
				}
			})
		}()
	}
	wg.Add(3)
	go func() {
		defer wg.Done()
		e.rotateLogs(ctx)
	}()
	go func() {
		defer wg.Done()
		e.watchExits(ctx)
	}()
	go func() {
		defer wg.Done()
		e.refreshProcs(ctx)
	}()
	<-ctx.Done()
	e.stopBackground()
	wg.Wait()
	e.daemon = nil // stopped by supervise
	return nil
}

func (e *Executor) stopBackground() {
	e.bgCancel()
	e.bgWG.Wait()
}

func (e *Executor) stopDaemon() {
	if e.daemon != nil {
		if err := e.daemon.stop(10 * time.Second); err != nil {
			e.log.Warn("stop containerd", logKeyErr, err)
		}
	}
}

// Close stops background work and the own containerd (when Run did not
// already) and closes the client. Containers keep running.
func (e *Executor) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.stopBackground()
	e.closeTaskLogs()
	e.ports.releaseAll()
	var err error
	if e.client != nil {
		err = e.client.Close()
	}
	e.stopDaemon()
	return err
}

// Observe reports every gitorc container in the namespace.
func (e *Executor) Observe(ctx context.Context) ([]agent.Observed, error) {
	ctx = e.ctx(ctx)
	// The containers and their tasks' states from the executor's caches
	// (procs.go); listed through containerd (and the tasks' shims) only
	// while the caches are not current.
	procs, live := e.procs.snapshot()
	if !live {
		if _, err := e.listTasks(ctx); err != nil { // the containers too
			return nil, err
		}
		procs, _ = e.procs.snapshot()
	}
	cs, current := e.ctrs.snapshot()
	if !current {
		var err error
		if cs, err = e.listContainers(ctx); err != nil {
			return nil, err
		}
	}
	ids := make([]string, 0, len(cs))
	for id := range cs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]agent.Observed, 0, len(cs))
	for _, id := range ids {
		labels := cs[id]
		o := agent.Observed{TaskID: labels[LabelTaskID], ContainerID: id, State: agent.ContainerCreated}
		if p, ok := procs[id]; ok {
			o.State = processState(p.status)
			if o.State == agent.ContainerExited {
				o.ExitCode = int(p.exitCode)
				o.ExitedAt = p.exitedAt
			}
		}
		if ps := labels[labelHostPorts]; ps != "" && o.State == agent.ContainerRunning {
			// Held again after a restart of the executor (the sockets
			// died with the process); a no-op when held already.
			// One that another process took meanwhile is reported on
			// the task's status: the task runs on, its port in doubt.
			if err := e.ports.hold(o.TaskID, parseHostPorts(ps), false); err != nil {
				o.Warning = err.Error()
			}
		}
		if hc := labels[labelHealthcheck]; hc != "" {
			o.Health, o.HealthMessage = api.HealthStarting, ""
			if o.State == agent.ContainerRunning {
				o.Health, o.HealthMessage = e.ensureMonitor(id, hc)
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// processState is what a task's process status says of its container.
// UNKNOWN is what containerd 1.6 reports when its shim did not answer a
// state query within its 2 s deadline (a busy shim): the process is
// there, so it counts as running, not as a container never started
// (which the agent would fail and remove).
func processState(s tasktypes.Status) agent.ContainerState {
	switch s {
	case tasktypes.Status_RUNNING, tasktypes.Status_PAUSED, tasktypes.Status_PAUSING, tasktypes.Status_UNKNOWN:
		return agent.ContainerRunning
	case tasktypes.Status_STOPPED:
		return agent.ContainerExited
	}
	return agent.ContainerCreated
}

// Start starts the task's process with its output going to the task log.
// A task already started is left alone.
func (e *Executor) Start(ctx context.Context, taskID string) error {
	ctx = e.ctx(ctx)
	c, err := e.client.LoadContainer(ctx, taskID)
	if err != nil {
		return fmt.Errorf("start: %w", notFound(err))
	}
	if t, err := c.Task(ctx, nil); err == nil {
		st, err := t.Status(ctx)
		if err != nil {
			return fmt.Errorf("start: %w", err)
		}
		if st.Status != client.Created {
			return nil
		}
		if err := t.Start(ctx); err != nil {
			return fmt.Errorf("start: %w", cleanRuntimeErr(err))
		}
		e.procs.started(taskID, t.Pid())
		return nil
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("start: %w", err)
	}
	info, err := c.Info(ctx, client.WithoutRefreshedMetadata)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	group := info.Labels[labelShimGroup]
	e.stopTaskLog(taskID, false) // no task: whatever FIFOs there are are stale
	l, err := e.openTaskLog(taskID)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	unlock := e.shims.lock(group)
	t, err := c.NewTask(ctx, l.creator())
	unlock()
	if err != nil {
		e.stopTaskLog(taskID, false)
		return fmt.Errorf("start: %w", cleanRuntimeErr(err))
	}
	e.procs.created(taskID, t.Pid())
	e.startTaskLog(l) // the shim holds the FIFOs' write ends now
	if err := t.Start(ctx); err != nil {
		unlock := e.shims.lock(group)
		if _, derr := t.Delete(ctx, client.WithProcessKill); derr == nil || errdefs.IsNotFound(derr) {
			e.procs.deleted(taskID)
		}
		unlock()
		e.stopTaskLog(taskID, true)
		return fmt.Errorf("start: %w", cleanRuntimeErr(err))
	}
	e.procs.started(taskID, t.Pid())
	return nil
}

// Stop stops the task's process: its stop signal, then SIGKILL once the
// grace period has passed. The container stays.
func (e *Executor) Stop(ctx context.Context, taskID string) (exit agent.Exit, err error) {
	ctx = e.ctx(ctx)
	defer func() {
		if err == nil { // the process is gone: so is its claim on the node's ports
			e.ports.release(taskID)
		}
	}()
	c, err := e.client.LoadContainer(ctx, taskID)
	if err != nil {
		return agent.Exit{}, fmt.Errorf("stop: %w", notFound(err))
	}
	t, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return agent.Exit{}, nil
	} else if err != nil {
		return agent.Exit{}, fmt.Errorf("stop: %w", err)
	}
	labels, err := c.Labels(ctx)
	if err != nil {
		return agent.Exit{}, fmt.Errorf("stop: %w", err)
	}
	return e.stopTask(ctx, t, labels)
}

// Remove stops the task if it runs, then deletes its process, container,
// snapshot, network attachment and namespace, secret tmpfs and per-task
// files. Its log stays (RemoveLog).
func (e *Executor) Remove(ctx context.Context, taskID string) (agent.Exit, error) {
	ctx = e.ctx(ctx)
	e.stopMonitor(taskID)
	var exit agent.Exit
	c, err := e.client.LoadContainer(ctx, taskID)
	switch {
	case errdefs.IsNotFound(err):
	case err != nil:
		return exit, fmt.Errorf("remove: %w", err)
	default:
		if t, err := c.Task(ctx, nil); err == nil {
			labels, err := c.Labels(ctx)
			if err != nil {
				return exit, fmt.Errorf("remove: %w", err)
			}
			if exit, err = e.stopTask(ctx, t, labels); err != nil {
				return exit, fmt.Errorf("remove: %w", err)
			}
			// The process has exited: no kill before the delete.
			unlock := e.shims.lock(labels[labelShimGroup])
			_, err = t.Delete(ctx)
			unlock()
			if err != nil && !errdefs.IsNotFound(err) {
				return exit, fmt.Errorf("remove: delete task: %w", err)
			}
			e.procs.deleted(taskID)
		} else if !errdefs.IsNotFound(err) {
			return exit, fmt.Errorf("remove: %w", err)
		}
		if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			e.ctrs.invalidate()
			return exit, fmt.Errorf("remove: delete container: %w", err)
		}
		e.ctrs.remove(taskID)
	}
	e.stopTaskLog(taskID, true) // the task is gone: its streams end
	e.ports.release(taskID)
	if err := e.detachNetwork(ctx, taskID); err != nil {
		return exit, fmt.Errorf("remove: %w", err)
	}
	if err := removeTaskDir(e.taskDir(taskID)); err != nil {
		return exit, fmt.Errorf("remove: %w", err)
	}
	return exit, nil
}

func (e *Executor) taskDir(taskID string) string {
	return filepath.Join(e.cfg.DataDir, "tasks", taskID)
}

func notFound(err error) error {
	if errdefs.IsNotFound(err) {
		return agent.ErrNotFound
	}
	return err
}

// A container's ID must be a containerd identifier.
func checkID(id string) error {
	if !idRe.MatchString(id) {
		return fmt.Errorf("%w: task id %q is not a valid container id", ErrInvalidSpec, id)
	}
	return nil
}
