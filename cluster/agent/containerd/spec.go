package containerd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/gitorc/gitorc/cluster/api"
)

// cfsPeriod is the CFS period cpus limits are expressed in (100 ms).
const cfsPeriod = 100000

// processArgs is Docker's rule: Command replaces the image's entrypoint
// (and drops its cmd), Args replace its cmd.
func processArgs(ic ocispec.ImageConfig, c *api.ContainerSpec) ([]string, error) {
	entry, cmd := ic.Entrypoint, ic.Cmd
	if len(c.Command) > 0 {
		entry, cmd = c.Command, nil
	}
	if len(c.Args) > 0 {
		cmd = c.Args
	}
	args := append(append([]string{}, entry...), cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("%w: no command: the image has no entrypoint or cmd and the task sets none", ErrInvalidSpec)
	}
	return args, nil
}

// hostname is the task's hostname: the spec's, or the task ID's first 12
// characters as Docker does.
func hostname(t *api.Task) string {
	if h := t.Spec.Container.Hostname; h != "" {
		return h
	}
	if len(t.ID) > 12 {
		return t.ID[:12]
	}
	return t.ID
}

// containerLabels are the spec's labels plus gitorc's own, which win. hc
// is the healthcheck the container runs (taskHealthcheck), nil for none.
func containerLabels(t *api.Task, group, stopSignal string, hc *api.Healthcheck) (map[string]string, error) {
	c := &t.Spec.Container
	l := map[string]string{}
	for k, v := range c.Labels {
		l[k] = v
	}
	l[LabelTaskID] = t.ID
	l[LabelServiceID] = t.ServiceID
	l[LabelServiceName] = t.ServiceName
	l[LabelSlot] = fmt.Sprint(t.Slot)
	l[labelShimGroup] = group
	l[labelStopSignal] = stopSignal
	grace := c.StopGracePeriod
	if grace == 0 {
		grace = api.DefaultStopGracePeriod
	}
	l[labelStopGrace] = grace.Std().String()
	if r := t.Spec.Resources.Reservations; r.NanoCPUs > 0 || r.Memory > 0 {
		l[labelReserveCPUs] = r.NanoCPUs.String()
		l[labelReserveBytes] = fmt.Sprint(int64(r.Memory))
	}
	if !hc.Disabled() {
		b, err := json.Marshal(withHealthDefaults(*hc))
		if err != nil {
			return nil, fmt.Errorf("healthcheck: %w", err)
		}
		l[labelHealthcheck] = string(b)
	}
	return l, nil
}

// withHealthDefaults fills the timings a healthcheck left at zero.
func withHealthDefaults(h api.Healthcheck) api.Healthcheck {
	d := api.DefaultHealthcheck()
	if h.Interval == 0 {
		h.Interval = d.Interval
	}
	if h.Timeout == 0 {
		h.Timeout = d.Timeout
	}
	if h.Retries == 0 {
		h.Retries = d.Retries
	}
	if h.StartInterval == 0 {
		h.StartInterval = d.StartInterval
	}
	return h
}

// etcFiles writes the task's /etc/hosts, /etc/hostname and, for a task on
// the network plane (tn not nil), /etc/resolv.conf (not secret: on disk,
// in the task directory) and returns their bind mounts. On the network
// plane the hostname names the task's address, as under Docker.
func etcFiles(t *api.Task, taskDir string, hostNetwork bool, tn *taskNet) ([]specs.Mount, error) {
	host := hostname(t)
	var mounts []specs.Mount
	files := map[string]string{"hostname": host + "\n"}
	if tn != nil {
		// ndots:0: every name goes to the node's server as written,
		// service names included, without search-domain rounds.
		files["resolv.conf"] = fmt.Sprintf("nameserver %s\noptions ndots:0\n", tn.nameserver)
	}
	if !hostNetwork {
		var b strings.Builder
		b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
		self := "127.0.1.1"
		if tn != nil {
			self = tn.addr.String()
		}
		fmt.Fprintf(&b, "%s\t%s\n", self, host)
		for _, h := range t.Spec.Container.ExtraHosts {
			name, ip, ok := strings.Cut(h, ":")
			if !ok {
				return nil, fmt.Errorf("%w: extra host %q is not host:ip", ErrInvalidSpec, h)
			}
			fmt.Fprintf(&b, "%s\t%s\n", ip, name)
		}
		files["hosts"] = b.String()
	}
	for _, name := range []string{"hostname", "hosts", "resolv.conf"} {
		content, ok := files[name]
		if !ok {
			continue
		}
		p := filepath.Join(taskDir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", name, err)
		}
		mounts = append(mounts, specs.Mount{Destination: "/etc/" + name, Type: "bind", Source: p,
			Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}})
	}
	return mounts, nil
}

// userMounts turns the spec's volumes, binds and tmpfs into OCI mounts,
// creating named volumes (under volumesDir) and anonymous ones (under the
// task directory) on demand.
func userMounts(c *api.ContainerSpec, volumesDir, taskDir string) ([]specs.Mount, error) {
	var out []specs.Mount
	for i, m := range c.Mounts {
		opts := []string{"rbind"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		} else {
			opts = append(opts, "rw")
		}
		switch m.Type {
		case api.MountVolume:
			var dir string
			if m.Source == "" {
				dir = filepath.Join(taskDir, "volumes", fmt.Sprint(i))
			} else {
				if strings.ContainsAny(m.Source, "/\\") || m.Source == "." || m.Source == ".." {
					return nil, fmt.Errorf("%w: volume name %q", ErrInvalidSpec, m.Source)
				}
				dir = filepath.Join(volumesDir, m.Source)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("volume %s: %w", m.Source, err)
			}
			if m.Source != "" && len(m.VolumeOptions) > 0 {
				if err := mountVolume(m.Source, dir, m.VolumeOptions); err != nil {
					return nil, err
				}
			}
			out = append(out, specs.Mount{Destination: m.Target, Type: "bind", Source: dir, Options: opts})
		case api.MountBind:
			if _, err := os.Stat(m.Source); err != nil {
				return nil, fmt.Errorf("%w: bind source %s: %v", ErrInvalidSpec, m.Source, err)
			}
			out = append(out, specs.Mount{Destination: m.Target, Type: "bind", Source: m.Source, Options: opts})
		case api.MountTmpfs:
			topts := []string{"nosuid", "nodev", "noexec"}
			if m.ReadOnly {
				topts = append(topts, "ro")
			}
			if m.TmpfsSize > 0 {
				topts = append(topts, fmt.Sprintf("size=%d", int64(m.TmpfsSize)))
			}
			if m.TmpfsMode != 0 {
				topts = append(topts, fmt.Sprintf("mode=%o", m.TmpfsMode))
			}
			out = append(out, specs.Mount{Destination: m.Target, Type: "tmpfs", Source: "tmpfs", Options: topts})
		default:
			return nil, fmt.Errorf("%w: mount type %s", ErrInvalidSpec, m.Type)
		}
	}
	return out, nil
}

// specOpts builds the OCI spec of a task's container on top of the image's
// config. mounts are appended after the default ones (/proc, /dev, /run…),
// in order. A task on the network plane (tn not nil) joins its namespace.
func specOpts(t *api.Task, group string, img oci.Image, ic ocispec.ImageConfig, mounts []specs.Mount, hostNetwork bool, tn *taskNet) ([]oci.SpecOpts, error) {
	c := &t.Spec.Container
	args, err := processArgs(ic, c)
	if err != nil {
		return nil, err
	}
	// The container sees its own cgroup (and so its limits), read-only,
	// as under Docker.
	cgroup := specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup",
		Options: []string{"ro", "nosuid", "noexec", "nodev"}}
	opts := []oci.SpecOpts{
		oci.WithImageConfig(img),
		oci.WithProcessArgs(args...),
		oci.WithAnnotations(map[string]string{shimGroupAnnotation: group}),
		oci.WithHostname(hostname(t)),
		oci.WithMounts(append([]specs.Mount{cgroup}, mounts...)),
	}
	if len(c.Env) > 0 {
		opts = append(opts, oci.WithEnv(c.Env))
	}
	if c.Dir != "" {
		opts = append(opts, oci.WithProcessCwd(c.Dir))
	}
	if c.User != "" {
		opts = append(opts, oci.WithUser(c.User))
	}
	if len(c.Groups) > 0 {
		opts = append(opts, oci.WithAppendAdditionalGroups(c.Groups...))
	}
	if c.ReadOnly {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	switch {
	case hostNetwork:
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostHostsFile, oci.WithHostResolvconf)
	case tn != nil:
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: tn.nsPath}))
	}
	l, r := t.Spec.Resources.Limits, t.Spec.Resources.Reservations
	if l.Memory > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(l.Memory)))
	}
	if l.NanoCPUs > 0 {
		quota := int64(l.NanoCPUs) * cfsPeriod / 1e9
		opts = append(opts, oci.WithCPUCFS(max(quota, 1000), cfsPeriod))
	}
	if l.Pids > 0 {
		opts = append(opts, oci.WithPidsLimit(l.Pids))
	}
	if r.Memory > 0 {
		opts = append(opts, withMemoryReservation(int64(r.Memory)))
	}
	for _, u := range c.Ulimits {
		opts = append(opts, oci.WithRlimit(&specs.POSIXRlimit{
			Type: "RLIMIT_" + strings.ToUpper(u.Name), Soft: uint64(u.Soft), Hard: uint64(u.Hard)}))
	}
	if len(c.Sysctls) > 0 {
		opts = append(opts, withSysctls(c.Sysctls))
	}
	if len(c.CapAdd) > 0 {
		opts = append(opts, oci.WithAddedCapabilities(capNames(c.CapAdd)))
	}
	if len(c.CapDrop) > 0 {
		opts = append(opts, oci.WithDroppedCapabilities(capNames(c.CapDrop)))
	}
	return opts, nil
}

func capNames(in []string) []string {
	out := make([]string, len(in))
	for i, c := range in {
		c = strings.ToUpper(c)
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		out[i] = c
	}
	return out
}

func withMemoryReservation(b int64) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		if s.Linux.Resources.Memory == nil {
			s.Linux.Resources.Memory = &specs.LinuxMemory{}
		}
		s.Linux.Resources.Memory.Reservation = &b
		return nil
	}
}

func withSysctls(sc map[string]string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Sysctl == nil {
			s.Linux.Sysctl = map[string]string{}
		}
		for k, v := range sc {
			s.Linux.Sysctl[k] = v
		}
		return nil
	}
}

// stopSignal is the spec's, else the image's, else SIGTERM.
func stopSignal(c *api.ContainerSpec, ic ocispec.ImageConfig) string {
	switch {
	case c.StopSignal != "":
		return c.StopSignal
	case ic.StopSignal != "":
		return ic.StopSignal
	}
	return "SIGTERM"
}
