package containerd

// ReleaseHostPorts closes the sockets that hold e's tasks' host ports,
// as the end of the executor's process does.
func ReleaseHostPorts(e *Executor) { e.ports.releaseAll() }
