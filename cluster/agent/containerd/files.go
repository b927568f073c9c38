package containerd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/api"
)

// filesDir is where a task's secret and config tmpfs is mounted.
func filesDir(taskDir string) string { return filepath.Join(taskDir, "files") }

// prepareFiles writes the task's secrets and configs into a tmpfs of its
// own (nodev,nosuid,noexec, only root may enter) and returns read-only bind
// mounts of each file at its target. Secret plaintext touches no disk.
func prepareFiles(c *api.ContainerSpec, files agent.Files, taskDir string) ([]specs.Mount, error) {
	if len(c.Secrets) == 0 && len(c.Configs) == 0 {
		return nil, nil
	}
	type file struct {
		name string
		ref  api.FileRef
		data []byte
	}
	var fs []file
	size := 0
	for i, r := range c.Secrets {
		d, ok := files.Secrets[r.Name]
		if !ok {
			return nil, fmt.Errorf("%w: secret %q", ErrMissingFile, r.Name)
		}
		fs = append(fs, file{fmt.Sprintf("secret-%d", i), r, d.Reveal()})
		size += len(d)
	}
	for i, r := range c.Configs {
		d, ok := files.Configs[r.Name]
		if !ok {
			return nil, fmt.Errorf("%w: config %q", ErrMissingFile, r.Name)
		}
		fs = append(fs, file{fmt.Sprintf("config-%d", i), r, d})
		size += len(d)
	}
	dir := filesDir(taskDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	// Room for the files plus one page each.
	limit := size + (len(fs)+1)*4096
	opts := fmt.Sprintf("mode=0700,size=%d", limit)
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC, opts); err != nil {
		return nil, fmt.Errorf("secrets: mount tmpfs: %w", err)
	}
	var mounts []specs.Mount
	for _, f := range fs {
		p := filepath.Join(dir, f.name)
		uid, gid, err := fileOwner(f.ref)
		if err != nil {
			return nil, err
		}
		mode := os.FileMode(f.ref.Mode)
		if mode == 0 {
			mode = os.FileMode(api.DefaultFileMode)
		}
		if err := writeFile(p, f.data, mode, uid, gid); err != nil {
			return nil, fmt.Errorf("secrets: %s: %w", f.ref.Name, err)
		}
		target := f.ref.Target
		if !filepath.IsAbs(target) {
			target = filepath.Join(api.SecretsDir, target)
		}
		mounts = append(mounts, specs.Mount{Destination: target, Type: "bind", Source: p,
			Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}})
	}
	return mounts, nil
}

func writeFile(p string, data []byte, mode os.FileMode, uid, gid int) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Chown(p, uid, gid); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

// fileOwner parses a file's uid and gid; names cannot be resolved on the
// host, so they must be numbers.
func fileOwner(r api.FileRef) (uid, gid int, err error) {
	parse := func(what, s, def string) (int, error) {
		if s == "" {
			s = def
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%w: %s %s of %q must be a number", ErrInvalidSpec, what, s, r.Name)
		}
		return n, nil
	}
	if uid, err = parse("uid", r.UID, api.DefaultFileUID); err != nil {
		return 0, 0, err
	}
	gid, err = parse("gid", r.GID, api.DefaultFileGID)
	return uid, gid, err
}

// removeTaskDir unmounts the task's tmpfs and removes its directory.
func removeTaskDir(dir string) error {
	fd := filesDir(dir)
	for {
		err := unix.Unmount(fd, 0)
		if err == nil {
			continue // stacked mounts
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break // not (or no longer) a mount point
		}
		if errors.Is(err, unix.EBUSY) {
			if err := unix.Unmount(fd, unix.MNT_DETACH); err != nil {
				return fmt.Errorf("unmount %s: %w", fd, err)
			}
			continue
		}
		return fmt.Errorf("unmount %s: %w", fd, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}
