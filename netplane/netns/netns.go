package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NS is a network namespace: the one bound at Path, or the process's own
// when Path is empty.
type NS struct {
	Path string
}

// Own reports whether n is the process's own namespace.
func (n NS) Own() bool { return n.Path == "" }

func (n NS) String() string {
	if n.Own() {
		return "the process's network namespace"
	}
	return "network namespace " + n.Path
}

// Do runs fn on an OS thread inside the namespace and returns its error.
// Sockets and devices fn opens stay in the namespace after it returns; fn
// must not leave goroutines behind that expect to run in it. For the
// process's own namespace, fn runs on the calling goroutine.
func (n NS) Do(fn func() error) error {
	if n.Own() {
		return fn()
	}
	target, err := netns.GetFromPath(n.Path)
	if err != nil {
		return fmt.Errorf("open %s: %w", n, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		// The thread is switched back before it is unlocked; if that
		// fails it stays locked, and the runtime ends it with the
		// goroutine rather than reuse a thread in the wrong namespace.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter %s: %w", n, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

// Handle opens a handle on the namespace, for libraries that take one
// (netlink.NewHandleAt, nftables.WithNetNSFd). The caller closes it.
func (n NS) Handle() (netns.NsHandle, error) {
	if n.Own() {
		h, err := netns.Get()
		if err != nil {
			return h, fmt.Errorf("current network namespace: %w", err)
		}
		return h, nil
	}
	h, err := netns.GetFromPath(n.Path)
	if err != nil {
		return h, fmt.Errorf("open %s: %w", n, err)
	}
	return h, nil
}

// Create makes a new network namespace, with nothing but a loopback
// interface (down), bound to the file at path. An existing namespace at
// path is kept (Create is idempotent), so a restarted caller finds what
// it made before.
func Create(path string) error {
	if bound(path) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create netns %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o400)
	if err != nil {
		return fmt.Errorf("create netns %s: %w", path, err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		merr := unix.Mount(self, path, "none", unix.MS_BIND, "")
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		errc <- merr
	}()
	if err := <-errc; err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("create netns %s: %w", path, err)
	}
	return nil
}

// Remove unbinds and deletes the namespace file at path. The namespace
// itself ends when nothing uses it any more. A missing file is not an
// error.
func Remove(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", path, err)
	}
	return nil
}

// bound reports whether path is a bound network namespace.
func bound(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}
