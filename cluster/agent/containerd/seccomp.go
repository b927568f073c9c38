package containerd

import (
	"bytes"
	"os"
	"os/exec"
	"sync"

	"github.com/containerd/containerd/v2/contrib/apparmor"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/gitorc/gitorc/cluster/api"
)

// AppArmorProfile is the AppArmor profile containers run under where the
// kernel has AppArmor: containerd's default profile (as Docker's
// docker-default), loaded with apparmor_parser on first use.
const AppArmorProfile = "gitorc-default"

// securityOpts confine a container as Docker does, after its capabilities
// are set (the seccomp profile allows the system calls of the
// capabilities the container has): containerd's default seccomp profile,
// and its default AppArmor profile where the host has AppArmor, unless the
// spec asks for them unconfined (which the node's policy has allowed,
// checkPolicy). A privileged container has every capability and device,
// and neither profile, as under Docker.
func securityOpts(c *api.ContainerSpec) []oci.SpecOpts {
	var opts []oci.SpecOpts
	if c.Privileged {
		opts = append(opts, oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices)
	}
	if c.NoNewPrivileges {
		opts = append(opts, oci.WithNoNewPrivileges)
	}
	if !c.Privileged && !c.SeccompUnconfined {
		opts = append(opts, seccomp.WithDefaultProfile())
	}
	if !c.Privileged && !c.AppArmorUnconfined && HostAppArmor() {
		opts = append(opts, apparmor.WithDefaultProfile(AppArmorProfile))
	}
	return opts
}

// HostAppArmor reports whether the kernel has AppArmor enabled and
// apparmor_parser is there to load a profile. Without either, containers
// get no AppArmor profile (seccomp still applies).
var HostAppArmor = sync.OnceValue(func() bool {
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	if err != nil || !bytes.HasPrefix(b, []byte("Y")) {
		return false
	}
	_, err = exec.LookPath("apparmor_parser")
	return err == nil
})
