package containerd

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/errdefs"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/api"
)

// Prepare pulls the task's image when the node lacks it, creates its
// mounts, secret tmpfs, network namespace (attached to the network plane,
// for a task with an address when Config.Network is set) and /etc files,
// and creates its container (ID = task ID) on a new snapshot. A container
// that already exists is left alone. On failure nothing is left: no
// container, snapshot, mount, directory, attachment or namespace.
func (e *Executor) Prepare(ctx context.Context, t *api.Task, files agent.Files) (err error) {
	ctx = e.ctx(ctx)
	if err := checkID(t.ID); err != nil {
		return err
	}
	if err := e.checkPolicy(t); err != nil {
		return err
	}
	if _, err := e.client.LoadContainer(ctx, t.ID); err == nil {
		return nil
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("prepare: %w", err)
	}
	c := &t.Spec.Container
	// The network attachment (a namespace, CNI's plugins) does not depend
	// on the image: it is made while the image is checked or pulled.
	attached := make(chan attachResult, 1)
	go func() {
		tn, err := e.attachNetwork(ctx, t)
		attached <- attachResult{tn, err}
	}()
	waitAttach := sync.OnceValues(func() (*taskNet, error) {
		r := <-attached
		return r.tn, r.err
	})
	defer func() {
		if err != nil {
			if tn, aerr := waitAttach(); aerr == nil && tn != nil {
				if derr := e.detachNetwork(context.WithoutCancel(ctx), t.ID); derr != nil {
					e.log.Warn("detach after failed prepare", logKeyTask, t.ID, logKeyErr, derr)
				}
			}
		}
	}()
	img, err := e.ensureImage(ctx, c.Image)
	if err != nil {
		return err
	}
	ispec, imageHC, err := imageConfig(ctx, img)
	if err != nil {
		return fmt.Errorf("image %s: config: %w", c.Image, err)
	}

	dir := e.taskDir(t.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer func() {
		if err != nil {
			if rerr := removeTaskDir(dir); rerr != nil {
				e.log.Warn("clean up after failed prepare", logKeyTask, t.ID, logKeyErr, rerr)
			}
		}
	}()
	mounts, err := userMounts(c, e.volumesDir(), dir)
	if err != nil {
		return err
	}
	tn, err := waitAttach()
	if err != nil {
		return err
	}
	var hostPorts []hostPort
	if tn != nil {
		// The plane publishes the task's host ports by DNAT; the node
		// must not have another program on them.
		hostPorts = taskHostPorts(t)
		if err := e.ports.hold(t.ID, hostPorts, true); err != nil {
			return err
		}
		defer func() {
			if err != nil {
				e.ports.release(t.ID)
			}
		}()
	}
	etc, err := etcFiles(t, dir, e.cfg.HostNetwork, tn)
	if err != nil {
		return err
	}
	secretMounts, err := prepareFiles(c, files, dir)
	if err != nil {
		return err
	}
	mounts = append(append(etc, mounts...), secretMounts...)
	group := shimGroup(t, e.cfg.TasksPerShim)
	opts, err := specOpts(t, group, img, ispec.Config, mounts, e.cfg.HostNetwork, tn)
	if err != nil {
		return err
	}
	opts = append(opts, securityOpts(c)...)
	labels, err := containerLabels(t, group, stopSignal(c, ispec.Config), taskHealthcheck(c.Healthcheck, imageHC))
	if err != nil {
		return err
	}
	if len(hostPorts) > 0 {
		labels[labelHostPorts] = formatHostPorts(hostPorts)
	}
	_, err = e.client.NewContainer(ctx, t.ID,
		client.WithImage(img),
		client.WithRuntime(plugins.RuntimeRuncV2, &options.Options{BinaryName: e.runtime}),
		client.WithSnapshotter(e.cfg.Snapshotter),
		client.WithNewSnapshot(t.ID, img),
		client.WithNewSpec(opts...),
		client.WithContainerLabels(labels),
	)
	if errdefs.IsAlreadyExists(err) {
		e.ctrs.invalidate() // by another call: listed again
		return nil          // created meanwhile by an earlier call
	}
	if err != nil {
		e.ctrs.invalidate() // whether containerd recorded it is unknown
		// The snapshot is made before the container record.
		if rerr := e.client.SnapshotService(e.cfg.Snapshotter).Remove(ctx, t.ID); rerr != nil && !errdefs.IsNotFound(rerr) {
			e.log.Warn("remove snapshot after failed create", logKeyTask, t.ID, logKeyErr, rerr)
		}
		return fmt.Errorf("create container: %w", err)
	}
	e.ctrs.add(t.ID, labels)
	return nil
}

type attachResult struct {
	tn  *taskNet
	err error
}

func (e *Executor) volumesDir() string { return e.cfg.DataDir + "/volumes" }
