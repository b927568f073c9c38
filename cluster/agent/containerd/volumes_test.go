package containerd_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/agent/containerd"
	"github.com/gitorc/gitorc/cluster/api"
)

// A named volume with driver_opts is the filesystem they name, mounted
// on the node as Docker's local driver mounts it: a tmpfs of the size
// given, a bind of a host directory; a second task sees what the first
// wrote; options the local driver does not know fail the task.
func TestVolumeDriverOpts_Root(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	dir := netTestDir(t)
	e := netExecutor(t, dir, nil)
	host := t.TempDir()
	volumes := filepath.Join(dir, "volumes")
	t.Cleanup(func() {
		for _, v := range []string{"cache", "shared"} {
			_ = unix.Unmount(filepath.Join(volumes, v), unix.MNT_DETACH)
		}
	})
	run := func(vol string, opts map[string]string, script string) (string, error) {
		t.Helper()
		task := newTask(t, env.image, withCommand("sh", "-c", script), func(t *api.Task) {
			t.Spec.Container.Mounts = []api.Mount{{Type: api.MountVolume, Source: vol, Target: "/data", VolumeOptions: opts}}
		})
		if err := e.Prepare(ctx, task, agent.Files{}); err != nil {
			return "", err
		}
		removeOnCleanup(t, e, task.ID)
		if err := e.Start(ctx, task.ID); err != nil {
			return "", err
		}
		waitExited(t, e, task.ID)
		return logs(t, e, task.ID), nil
	}
	tmpfs := map[string]string{"type": "tmpfs", "device": "tmpfs", "o": "size=1m,mode=0755"}
	if _, err := run("cache", tmpfs, "echo one > /data/f"); err != nil {
		t.Fatal(err)
	}
	if out, err := run("cache", tmpfs, "cat /data/f; df -k /data | tail -1"); err != nil || !strings.Contains(out, "one") || !strings.Contains(out, " 1024 ") {
		t.Errorf("second task on the tmpfs volume: %v\n%s", err, out)
	}
	mounts, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(filepath.Join(volumes, "cache")))
	if err != nil || len(mounts) != 1 || mounts[0].FSType != "tmpfs" {
		t.Errorf("the volume's mount on the node: %+v %v", mounts, err)
	}

	bind := map[string]string{"type": "none", "device": host, "o": "bind"}
	if _, err := run("shared", bind, "echo two > /data/g"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(host, "g")); err != nil || string(b) != "two\n" {
		t.Errorf("the bound host directory holds %q (%v), want two", b, err)
	}

	_, err = run("odd", map[string]string{"type": "tmpfs", "device": "tmpfs", "size": "1m"}, "true")
	if err == nil || !strings.Contains(err.Error(), `option "size" is not one of the local driver's`) || !errors.Is(err, containerd.ErrInvalidSpec) {
		t.Errorf("unknown option: %v", err)
	}
}
