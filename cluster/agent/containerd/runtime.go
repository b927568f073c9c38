package containerd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// OCI runtimes. crun starts a container with a fraction of runc's CPU
// (runc is a Go binary that re-executes itself; crun is C), but Debian's
// crun 1.8.1 refuses hosts with hybrid cgroups ("cgroups in hybrid mode
// not supported, drop all controllers from cgroupv2"), as this project's
// machines have. The executor probes crun once, at New, by running a
// container with it, and falls back to runc when it does not work.
const (
	runtimeRunc = "runc"
	runtimeCrun = "crun"
	// probeBusybox is the static binary the probe container runs.
	probeBusybox = "/bin/busybox"
)

// chooseRuntime is the runtime when Config.Runtime is empty: crun when it
// works here, else runc.
func chooseRuntime(works func(bin string) bool) string {
	if works(runtimeCrun) {
		return runtimeCrun
	}
	return runtimeRunc
}

// RuntimeWorks reports whether the OCI runtime bin runs a container on
// this host: `true` from a static busybox, in its own namespaces and
// cgroup, as the executor's containers are (the cgroup is where crun
// refuses hybrid hosts). Everything it makes is removed.
func RuntimeWorks(ctx context.Context, bin string) bool {
	return probeRuntime(ctx, bin) == nil
}

func probeRuntime(ctx context.Context, bin string) error {
	path, err := exec.LookPath(bin)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "gitorc-runtime-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bundle, root := filepath.Join(dir, "bundle"), filepath.Join(dir, "state")
	if err := os.MkdirAll(filepath.Join(bundle, "rootfs", "bin"), 0o755); err != nil {
		return err
	}
	bb := filepath.Join(bundle, "rootfs", "bin", "busybox")
	if err := copyFile(probeBusybox, bb); err != nil {
		return err
	}
	if err := os.Chmod(bb, 0o755); err != nil {
		return err
	}
	id := fmt.Sprintf("gitorc-probe-%d", os.Getpid())
	spec := specs.Spec{
		Version:  probeSpecVersion,
		Root:     &specs.Root{Path: "rootfs", Readonly: true},
		Hostname: "probe",
		Process: &specs.Process{
			Args: []string{"/bin/busybox", "true"},
			Env:  []string{"PATH=/bin"},
			Cwd:  "/",
		},
		Mounts: []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}},
		Linux: &specs.Linux{
			CgroupsPath: "/" + id,
			Resources:   &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(16))}},
			Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace},
				{Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.NetworkNamespace}},
		},
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, path, "--root", root, "run", "--bundle", bundle, id)
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	// Whatever happened, nothing of it stays.
	_ = exec.Command(path, "--root", root, "delete", "--force", id).Run()
	if err != nil {
		return fmt.Errorf("%s run: %w: %s", bin, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// probeSpecVersion is the version of the specs the executor's containers
// get (containerd's client writes its runtime-spec module's): a runtime
// that refuses it cannot run them either.
var probeSpecVersion = specs.Version

func ptr[T any](v T) *T { return &v }
