package containerd_test

import (
	"context"
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/gitorc/gitorc/cluster/agent/containerd"
)

func namespaced(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, containerd.DefaultNamespace)
}

var (
	processKill     = client.WithProcessKill
	snapshotCleanup = client.WithSnapshotCleanup
)

// rootfsPath is path p inside the root filesystem of process pid.
func rootfsPath(pid uint32, p string) string {
	return fmt.Sprintf("/proc/%d/root%s", pid, p)
}

func writeEmpty(p string) error { return os.WriteFile(p, nil, 0o644) }
