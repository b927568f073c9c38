package containerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/api"
)

// Progress is a snapshot of a pull: how many blobs (index, manifests,
// config, layers) were requested of those known so far, and their bytes.
type Progress struct {
	Ref              string
	Fetched, Total   int
	FetchedB, TotalB int64
}

// Line is the progress as a task's status shows it.
func (p Progress) Line() string {
	return fmt.Sprintf("pulling %s: %d/%d blobs, %s of %s", p.Ref, p.Fetched, p.Total, mib(p.FetchedB), mib(p.TotalB))
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func (p Progress) String() string {
	return fmt.Sprintf("pull %s: %d/%d blobs, %d/%d bytes", p.Ref, p.Fetched, p.Total, p.FetchedB, p.TotalB)
}

// pull is one pull in flight; concurrent tasks of one image share it.
type pull struct {
	done chan struct{}
	img  client.Image
	err  error
}

// normalize turns "busybox" into "docker.io/library/busybox:latest".
func normalize(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("%w: image %q: %v", ErrInvalidSpec, ref, err)
	}
	return named.String(), nil
}

// ensureImage returns the image, unpacked, pulling it when it is not
// present on the node (images loaded from archives count as present).
func (e *Executor) ensureImage(ctx context.Context, ref string) (client.Image, error) {
	name, err := normalize(ref)
	if err != nil {
		return nil, err
	}
	img, err := e.client.GetImage(ctx, name)
	switch {
	case err == nil:
		if err := e.unpack(ctx, img); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", ref, err)
		}
		return img, nil
	case !errdefs.IsNotFound(err):
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	// The task's status says how far the pull is (agent.WithProgress).
	return e.Pull(ctx, ref, func(p Progress) { agent.Progress(ctx, p.Line()) })
}

func (e *Executor) unpack(ctx context.Context, img client.Image) error {
	ok, err := img.IsUnpacked(ctx, e.cfg.Snapshotter)
	if err != nil || ok {
		return err
	}
	return img.Unpack(ctx, e.cfg.Snapshotter)
}

// Pull fetches an image from its registry and unpacks it for the
// snapshotter. progress, when set, is called as blobs arrive. Pulls of one
// reference in flight at once are shared.
func (e *Executor) Pull(ctx context.Context, ref string, progress func(Progress)) (client.Image, error) {
	ctx = e.ctx(ctx)
	name, err := normalize(ref)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	p, shared := e.pulling[name]
	if !shared {
		p = &pull{done: make(chan struct{})}
		e.pulling[name] = p
	}
	e.mu.Unlock()
	if shared {
		select {
		case <-p.done:
			return p.img, p.err
		case <-ctx.Done():
			return nil, fmt.Errorf("pull %s: %w", ref, ctx.Err())
		}
	}
	p.img, p.err = e.pull(ctx, ref, name, progress)
	e.mu.Lock()
	delete(e.pulling, name)
	e.mu.Unlock()
	close(p.done)
	return p.img, p.err
}

func (e *Executor) pull(ctx context.Context, ref, name string, progress func(Progress)) (client.Image, error) {
	var fetched, total atomic.Int64
	var fetchedB, totalB atomic.Int64
	report := func() {
		if progress != nil {
			progress(Progress{Ref: ref, Fetched: int(fetched.Load()), Total: int(total.Load()),
				FetchedB: fetchedB.Load(), TotalB: totalB.Load()})
		}
	}
	counter := images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		// Called as each blob is requested; its children become known
		// once it is in the content store.
		fetched.Add(1)
		fetchedB.Add(desc.Size)
		report()
		return nil, nil
	})
	announce := func(h images.Handler) images.Handler {
		return images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			children, err := h.Handle(ctx, desc)
			if err == nil {
				total.Add(int64(len(children)))
				for _, c := range children {
					totalB.Add(c.Size)
				}
			}
			return children, err
		})
	}
	total.Store(1) // the root manifest or index
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: e.hosts})
	img, err := e.client.Pull(ctx, name,
		client.WithResolver(resolver),
		client.WithPullUnpack,
		client.WithPullSnapshotter(e.cfg.Snapshotter),
		client.WithImageHandler(counter),
		client.WithImageHandlerWrapper(announce),
	)
	if err != nil {
		if refused := e.refusedPull(ref, err); refused != nil {
			return nil, refused
		}
		return nil, fmt.Errorf("pull %s: %w", ref, pullErr(err))
	}
	e.log.Info("pulled image", logKeyImage, ref)
	return img, nil
}

// imageConfig reads an image's config blob once: its OCI config, and the
// healthcheck Docker keeps beside it (imageHealthcheck), nil for none.
func imageConfig(ctx context.Context, img client.Image) (ocispec.Image, *api.Healthcheck, error) {
	var spec ocispec.Image
	desc, err := img.Config(ctx)
	if err != nil {
		return spec, nil, err
	}
	blob, err := content.ReadBlob(ctx, img.ContentStore(), desc)
	if err != nil {
		return spec, nil, err
	}
	if err := json.Unmarshal(blob, &spec); err != nil {
		return spec, nil, err
	}
	hc, err := imageHealthcheck(blob)
	if err != nil {
		return spec, nil, err
	}
	return spec, hc, nil
}

// pullErr reduces containerd's nested pull errors to their cause.
func pullErr(err error) error {
	var op *net.OpError
	switch {
	case errdefs.IsNotFound(err):
		return ErrImageNotFound
	case errors.As(err, &op):
		return op
	}
	return err
}

// Import loads the images of an OCI or docker archive into the node's
// image store and unpacks them. Images are named after the archive's
// annotations (io.containerd.image.name, or a full reference in
// org.opencontainers.image.ref.name) or RepoTags; name, when set, names
// the archive's index instead. It returns the names created.
func (e *Executor) Import(ctx context.Context, r io.Reader, name string) ([]string, error) {
	ctx = e.ctx(ctx)
	opts := []client.ImportOpt{client.WithImageRefTranslator(func(ref string) string {
		// A bare tag ("latest") names nothing on its own.
		if !strings.ContainsAny(ref, "/:") {
			return ""
		}
		n, err := normalize(ref)
		if err != nil {
			return ""
		}
		return n
	})}
	if name != "" {
		n, err := normalize(name)
		if err != nil {
			return nil, err
		}
		opts = append(opts, client.WithIndexName(n))
	}
	imgs, err := e.client.Import(ctx, r, opts...)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("import: the archive names no image: give it a name")
	}
	var names []string
	for _, im := range imgs {
		img := client.NewImage(e.client, im)
		if err := e.unpack(ctx, img); err != nil {
			return names, fmt.Errorf("import: unpack %s: %w", im.Name, err)
		}
		names = append(names, im.Name)
	}
	return names, nil
}

// cleanRuntimeErr turns "failed to create shim task: OCI runtime create
// failed: runc create failed: unable to start container process: exec:
// "/nope": stat /nope: no such file or directory: unknown" into its cause.
func cleanRuntimeErr(err error) error {
	msg := err.Error()
	const marker = "unable to start container process: "
	if i := strings.LastIndex(msg, marker); i >= 0 {
		msg = msg[i+len(marker):]
		msg = strings.TrimSuffix(msg, ": unknown")
		return &runtimeError{msg: msg, err: err}
	}
	return err
}

type runtimeError struct {
	msg string
	err error
}

func (e *runtimeError) Error() string { return e.msg }
func (e *runtimeError) Unwrap() error { return e.err }
