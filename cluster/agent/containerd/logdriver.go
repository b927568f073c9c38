package containerd

import (
	"github.com/gitorc/gitorc/cluster/agent/containerd/logdriver"
)

// LogDriverArg is the first argument the shim gives the log driver
// (Config.LogDriver); the second is the log file.
const LogDriverArg = logdriver.Arg

// RunLogDriver is a task's log driver (package logdriver), for a binary
// that runs it when called as "BINARY log-driver FILE": cmd/gitorc-logger,
// and gitorc itself where that is missing.
func RunLogDriver(file string) error { return logdriver.Run(file) }
