package main

import (
	"fmt"
	"os"

	"github.com/gitorc/gitorc/cluster/agent/containerd/logdriver"
)

func main() {
	if len(os.Args) != 3 || os.Args[1] != logdriver.Arg {
		fmt.Fprintln(os.Stderr, "usage: gitorc-logger log-driver FILE (run by containerd's shim for a gitorc task)")
		os.Exit(2)
	}
	if err := logdriver.Run(os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "gitorc-logger:", err)
		os.Exit(1)
	}
}
