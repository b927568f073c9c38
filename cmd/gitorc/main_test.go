package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/gitorc/gitorc/cluster/agent/containerd"
)

// TestMain lets the test binary be the tasks' log driver, as gitorc is
// when no gitorc-logger stands beside it: the daemons the tests start
// hand the shim os.Executable(), this binary.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == containerd.LogDriverArg {
		if err := containerd.RunLogDriver(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
