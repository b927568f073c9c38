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
// container; stopping with the stop signal then SIGKILL after the grace
// period; per-task log files with size-based rotation.
//
// Shims: the replicas of one service on a node share one runc shim
// (containerd's io.containerd.runc.v2.group annotation), which saves a
// shim process start per replica; the executor creates and deletes the
// tasks of one group one at a time, because containerd 1.6 does not guard
// a group shim's start and end (shim.go).
//
// Networking: containers run in a network namespace of their own that has
// only a loopback interface, unless Config.HostNetwork puts them in the
// host's. Attaching them to the overlay through CNI belongs to netplane.
//
// Layout under Config.DataDir:
//
//	containerd/   config.toml, root/, state/, containerd.sock, containerd.log (own daemon only)
//	tasks/<id>/   per-task files: hosts, hostname, and files/ (the tmpfs of secrets and configs)
//	volumes/<name>/ named node-local volumes
//	logs/<id>.log stdout and stderr of a task, with rotated .1 … .N beside it
//
// It implements agent.Executor and imports cluster/api and cluster/agent
// only among gitorc packages; never manager-side packages (cluster/store,
// cluster/orchestrator, cluster/scheduler, cluster/dispatcher), reconcile
// or compose.
package containerd
