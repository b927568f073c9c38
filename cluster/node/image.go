package node

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/gitorc/gitorc/cluster/agent/containerd"
)

// executorDir is where the worker's executor keeps its state under the
// node's data directory.
func executorDir(dataDir string) string { return filepath.Join(dataDir, "executor") }

// ImportImages loads the images of an OCI or Docker archive into the
// containerd at address when it answers, else into the node's own in
// dataDir (started for the import when it is not running), and names
// them: name, when given, tags a single image.
func ImportImages(ctx context.Context, dataDir, address string, archive io.Reader, name string, log *slog.Logger) ([]string, error) {
	e, err := containerd.New(ctx, containerd.Config{DataDir: executorDir(dataDir), Address: address, Logger: log})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	return e.Import(ctx, archive, name)
}

// DefaultContainerd is the containerd socket gitorc image load tries first.
const DefaultContainerd = containerd.DefaultAddress
