// Package containerd is the worker's executor: it turns api tasks into
// containers with the containerd v2 Go client, in the "gitorc" containerd
// namespace, and reports what it observes of them.
//
// It owns: connecting to containerd, or starting and supervising a
// containerd of its own (config, root, state and socket under the data
// directory, as k3s does) when no socket is reachable; pulling images from
// registries (docker-style auth file, plain HTTP only for registries
// configured as insecure) and importing OCI or docker archives; creating
// containers from task specs (command, env, user, working dir, hostname,
// labels, cgroup limits, volumes, binds, tmpfs); delivering secrets and
// configs as files of a per-task host tmpfs (nodev,nosuid,noexec)
// bind-mounted read-only at their targets; healthchecks run inside the
// container: the spec's, else the HEALTHCHECK Docker keeps in the image's
// config (its config.Healthcheck, read from the raw config blob), which a
// spec that disables the check switches off too; stopping with the stop signal then SIGKILL after the grace
// period; per-task log files with size-based rotation, written by the
// executor itself from the FIFOs the shim writes the tasks' stdout and
// stderr to, re-attached after a restart (taskio.go: what a task writes
// while no executor reads waits in the pipe, then blocks the task).
//
// Confinement: every container runs under containerd's default seccomp
// profile (contrib/seccomp, fitted to the capabilities it has) and, where
// the kernel has AppArmor and apparmor_parser exists, containerd's default
// AppArmor profile (seccomp.go); privileged and unconfined containers only
// as their spec asks. Prepare first checks the task against the node's
// policy (Config.Policy: binds, capabilities, sysctls, privileged,
// unconfined) and rejects what it does not allow (policy.go).
//
// Shims: the replicas of one service on a node share runc shims, one per
// Config.TasksPerShim slots (containerd's io.containerd.runc.v2.group
// annotation), which saves a shim process start per replica; the executor
// creates and deletes the tasks of one group one at a time, because
// containerd 1.6 does not guard a group shim's start and end (shim.go).
// It stops a task by signalling its init process through a pidfd, not
// through the shim, whose locks stall a mass stop (stop.go). The OCI
// runtime is Config.Runtime, else crun when a probe at New finds it works,
// else runc (runtime.go).
//
// Observing: Observe asks no shim and lists no container while Run runs.
// The executor keeps its tasks' process states and its containers' labels
// from its own calls and from containerd's exit events, which it also
// passes on as agent.ChangeNotifier signals (a killed task is seen at
// once, not at the agent's next interval); full lists seed both caches
// at each event subscription and every 10 s (procs.go, changes.go).
//
// Networking: with Config.Network set, a task that has an address
// (Task.Addr) runs in a network namespace the executor creates and binds
// at netns/<id> (netplane/netns) before the container exists; the
// TaskNetwork (netplane's CNI attachment, in production) connects it to
// the overlay and names the nameserver; the task's resolv.conf names it
// (options ndots:0) and its hosts file maps the hostname to the task's
// address. Remove detaches and removes the namespace after the container
// is gone, deriving the path from the ID alone. Other containers run in a
// network namespace of their own that has only a loopback interface, or
// in the host's with Config.HostNetwork (which wins over Network).
//
// Layout under Config.DataDir:
//
//	containerd/   config.toml, root/, state/, containerd.sock, containerd.log (own daemon only)
//	tasks/<id>/   per-task files: hosts, hostname, resolv.conf (on the network plane), and files/ (the tmpfs of secrets and configs)
//	netns/<id>    the task's network namespace, bound to the file (on the network plane only)
//	volumes/<name>/ named node-local volumes
//	logs/<id>.log stdout and stderr of a task, with rotated .1 … .N beside it
//	fifo/<id>.stdout, <id>.stderr  the task's output FIFOs (and a .partial line kept across a restart); healthcheck execs' FIFO dirs
//
// It implements agent.Executor and imports cluster/api, cluster/agent and
// netplane/netns only among gitorc packages; never manager-side packages (cluster/store,
// cluster/orchestrator, cluster/scheduler, cluster/dispatcher), reconcile
// or compose.
package containerd
