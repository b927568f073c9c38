package containerd

import (
	"fmt"
	"net"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/gitorc/gitorc/cluster/api"
)

// mountVolume mounts a named volume's filesystem (driver_opts type,
// device, o) on its directory, as Docker's local driver does, unless it
// is mounted already: the first task on the node that uses the volume
// mounts it, and it stays for the next ones.
func mountVolume(name, dir string, opts map[string]string) error {
	if err := api.ValidVolumeOptions(opts); err != nil {
		return fmt.Errorf("%w: volume %s: %v", ErrInvalidSpec, name, err)
	}
	mounted, err := mountinfo.Mounted(dir)
	if err != nil {
		return fmt.Errorf("volume %s: %w", name, err)
	}
	if mounted {
		return nil
	}
	flags, data := mountFlags(opts["o"])
	fstype := opts["type"]
	if fstype == "none" {
		fstype = ""
	}
	if fstype == "nfs" || fstype == "nfs4" {
		// The kernel takes an address, not a name (the local driver
		// resolves it so too).
		data = resolveAddr(data)
	}
	if err := unix.Mount(opts["device"], dir, fstype, flags, data); err != nil {
		return fmt.Errorf("volume %s: mount %s (%s) on the node: %w", name, opts["device"], opts["type"], err)
	}
	return nil
}

// mountFlags splits mount(8) options into the flags the kernel takes as
// bits and the rest, which it takes as data.
func mountFlags(o string) (uintptr, string) {
	bits := map[string]uintptr{"ro": unix.MS_RDONLY, "nosuid": unix.MS_NOSUID, "nodev": unix.MS_NODEV,
		"noexec": unix.MS_NOEXEC, "sync": unix.MS_SYNCHRONOUS, "noatime": unix.MS_NOATIME,
		"nodiratime": unix.MS_NODIRATIME, "relatime": unix.MS_RELATIME, "bind": unix.MS_BIND,
		"rbind": unix.MS_BIND | unix.MS_REC}
	var flags uintptr
	var data []string
	for _, f := range strings.Split(o, ",") {
		switch {
		case f == "" || f == "rw" || f == "defaults":
		case bits[f] != 0:
			flags |= bits[f]
		default:
			data = append(data, f)
		}
	}
	return flags, strings.Join(data, ",")
}

// resolveAddr replaces a host name in addr= by its first address.
func resolveAddr(data string) string {
	parts := strings.Split(data, ",")
	for i, p := range parts {
		if host, ok := strings.CutPrefix(p, "addr="); ok && net.ParseIP(host) == nil {
			if ips, err := net.LookupIP(host); err == nil && len(ips) > 0 {
				parts[i] = "addr=" + ips[0].String()
			}
		}
	}
	return strings.Join(parts, ",")
}
