package api

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// NodePolicy is what a node lets its tasks' containers have beyond
// Docker's defaults: host paths to bind, capabilities beyond the default
// set, sysctls beyond the namespaced ones, privileged and unconfined
// containers. An operator sets it with the flags of gitorc bootstrap,
// join and daemon; the node reports it on its description. The zero
// policy (and a node that reports none) allows only the defaults: named
// volumes and tmpfs, DefaultCapabilities, DefaultSysctls, the default
// seccomp (and AppArmor) profile.
type NodePolicy struct {
	// AllowBinds are host paths a task may bind (the path or anything
	// below it); absolute, clean.
	AllowBinds []string `json:"allow_binds,omitempty"`
	// AllowCaps are capabilities a task may add beyond
	// DefaultCapabilities, without CAP_ ("SYS_ADMIN"); "ALL" allows any.
	AllowCaps []string `json:"allow_caps,omitempty"`
	// AllowSysctls are sysctls a task may set beyond DefaultSysctls: a
	// name, or a prefix ending in "*" ("vm.*").
	AllowSysctls []string `json:"allow_sysctls,omitempty"`
	// AllowPrivileged lets a task run privileged: true.
	AllowPrivileged bool `json:"allow_privileged,omitempty"`
	// AllowUnconfined lets a task run without the default seccomp or
	// AppArmor profile (security_opt: seccomp=unconfined).
	AllowUnconfined bool `json:"allow_unconfined,omitempty"`
}

// DefaultCapabilities are the capabilities every container has (Docker's
// and containerd's default set); cap_add of one of them needs nothing.
var DefaultCapabilities = []string{
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}

// DefaultSysctls are the sysctls a task may set on any node: those Docker
// allows, which the kernel keeps per network, IPC or UTS namespace (a
// trailing "*" is a prefix).
var DefaultSysctls = []string{
	"net.*", "kernel.shm*", "kernel.msg*", "kernel.sem", "fs.mqueue.*",
	"kernel.domainname", "kernel.hostname",
}

// NeedKind is what a container needs of its node's policy.
type NeedKind uint8

const (
	NeedBind       NeedKind = iota + 1 // a host path (bind, or a volume on a host path)
	NeedCap                            // a capability beyond the default set
	NeedSysctl                         // a sysctl beyond the namespaced ones
	NeedPrivileged                     // privileged: true
	NeedUnconfined                     // no default seccomp/AppArmor profile
)

var needFlags = map[NeedKind]string{
	NeedBind: "--allow-bind", NeedCap: "--allow-cap", NeedSysctl: "--allow-sysctl",
	NeedPrivileged: "--allow-privileged", NeedUnconfined: "--allow-unconfined",
}

// Need is one thing a container needs that only a node's policy grants.
type Need struct {
	Kind NeedKind `json:"kind"`
	// Value is the host path, capability (without CAP_) or sysctl name.
	Value string `json:"value,omitempty"`
	// Field is where the ContainerSpec asks for it: mounts[0], cap_add[1],
	// sysctls[vm.swappiness], privileged, seccomp, apparmor.
	Field string `json:"field"`
	// Volume is the named volume whose driver options mount Value.
	Volume string `json:"volume,omitempty"`
}

// String says what is needed: "bind of /var/run/docker.sock".
func (n Need) String() string {
	switch n.Kind {
	case NeedBind:
		if n.Volume != "" {
			return fmt.Sprintf("volume %s on host path %s", n.Volume, n.Value)
		}
		return "bind of " + n.Value
	case NeedCap:
		return "capability " + n.Value
	case NeedSysctl:
		return "sysctl " + n.Value
	case NeedPrivileged:
		return "privileged"
	case NeedUnconfined:
		return n.Field + "=unconfined"
	}
	return "unknown need"
}

// Flag is the node flag that allows the need: "--allow-bind".
func (n Need) Flag() string { return needFlags[n.Kind] }

// NormalizeCap spells a capability as policies and Needs do: upper case,
// without CAP_.
func NormalizeCap(c string) string {
	return strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(c)), "CAP_")
}

// Needs lists what c needs beyond the defaults, in field order.
func Needs(c *ContainerSpec) []Need {
	var out []Need
	if c.Privileged {
		out = append(out, Need{Kind: NeedPrivileged, Field: "privileged"})
	}
	for i, m := range c.Mounts {
		field := "mounts[" + strconv.Itoa(i) + "]"
		switch m.Type {
		case MountBind:
			out = append(out, Need{Kind: NeedBind, Value: m.Source, Field: field})
		case MountVolume:
			if dev, ok := volumeHostPath(m.VolumeOptions); ok {
				out = append(out, Need{Kind: NeedBind, Value: dev, Field: field, Volume: m.Source})
			}
		}
	}
	for i, cp := range c.CapAdd {
		if n := NormalizeCap(cp); !slices.Contains(DefaultCapabilities, n) {
			out = append(out, Need{Kind: NeedCap, Value: n, Field: "cap_add[" + strconv.Itoa(i) + "]"})
		}
	}
	names := make([]string, 0, len(c.Sysctls))
	for k := range c.Sysctls {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if !matchSysctl(DefaultSysctls, k) {
			out = append(out, Need{Kind: NeedSysctl, Value: k, Field: "sysctls[" + k + "]"})
		}
	}
	if c.SeccompUnconfined {
		out = append(out, Need{Kind: NeedUnconfined, Field: "seccomp"})
	}
	if c.AppArmorUnconfined {
		out = append(out, Need{Kind: NeedUnconfined, Field: "apparmor"})
	}
	return out
}

// volumeHostPath is the host path a local volume's driver options mount
// (device of a bind, or of a block device): a path of the node, which only
// --allow-bind opens. NFS ("addr:/export"), tmpfs and the like have none.
func volumeHostPath(opts map[string]string) (string, bool) {
	dev := opts["device"]
	return dev, strings.HasPrefix(dev, "/")
}

func matchSysctl(patterns []string, name string) bool {
	for _, p := range patterns {
		if pre, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(name, pre) || p == name {
			return true
		}
	}
	return false
}

// Allows reports whether the policy grants n. A nil policy is the
// default one.
func (p *NodePolicy) Allows(n Need) bool {
	if p == nil {
		p = &NodePolicy{}
	}
	switch n.Kind {
	case NeedBind:
		return AllowsPath(p.AllowBinds, n.Value)
	case NeedCap:
		want := NormalizeCap(n.Value)
		return slices.ContainsFunc(p.AllowCaps, func(c string) bool { c = NormalizeCap(c); return c == "ALL" || c == want })
	case NeedSysctl:
		return matchSysctl(p.AllowSysctls, n.Value)
	case NeedPrivileged:
		return p.AllowPrivileged
	case NeedUnconfined:
		return p.AllowUnconfined
	}
	return false
}

// AllowsPath reports whether host path p is one of allowed or lies below
// one of them. Both sides are compared clean; a relative path is never
// allowed.
func AllowsPath(allowed []string, p string) bool {
	if !path.IsAbs(p) {
		return false
	}
	p = path.Clean(p)
	for _, a := range allowed {
		a = path.Clean(a)
		if a == "/" || p == a || strings.HasPrefix(p, a+"/") {
			return true
		}
	}
	return false
}

// Refused lists the needs of c that the policy does not grant.
func (p *NodePolicy) Refused(c *ContainerSpec) []Need {
	var out []Need
	for _, n := range Needs(c) {
		if !p.Allows(n) {
			out = append(out, n)
		}
	}
	return out
}

// AllowedByAny reports whether one of the policies grants n; with no
// policies, whether the default policy does (it grants no need).
func AllowedByAny(policies []NodePolicy, n Need) bool {
	for i := range policies {
		if policies[i].Allows(n) {
			return true
		}
	}
	return false
}

// NoNodeAllows is the message for a need no node of the cluster grants:
// "bind of /x: no node allows it (gitorc join --allow-bind)".
func NoNodeAllows(n Need) string {
	return fmt.Sprintf("%s: no node allows it (gitorc join %s)", n, n.Flag())
}

// Normalize returns the policy with capabilities spelled as NormalizeCap
// does, paths cleaned, lists sorted and without duplicates, or an error
// naming the flag whose value is wrong.
func (p NodePolicy) Normalize() (NodePolicy, error) {
	var out NodePolicy
	out.AllowPrivileged, out.AllowUnconfined = p.AllowPrivileged, p.AllowUnconfined
	for _, b := range p.AllowBinds {
		if !path.IsAbs(b) {
			return NodePolicy{}, fmt.Errorf("--allow-bind %q: want an absolute host path", b)
		}
		out.AllowBinds = append(out.AllowBinds, path.Clean(b))
	}
	for _, c := range p.AllowCaps {
		n := NormalizeCap(c)
		if n == "" || strings.ContainsFunc(n, func(r rune) bool { return !(r >= 'A' && r <= 'Z' || r == '_') }) {
			return NodePolicy{}, fmt.Errorf("--allow-cap %q: want a capability name such as SYS_ADMIN, or ALL", c)
		}
		out.AllowCaps = append(out.AllowCaps, n)
	}
	for _, s := range p.AllowSysctls {
		s = strings.TrimSpace(s)
		if s == "" || strings.ContainsAny(s, " /=") || strings.Contains(strings.TrimSuffix(s, "*"), "*") {
			return NodePolicy{}, fmt.Errorf("--allow-sysctl %q: want a sysctl name such as vm.swappiness, or a prefix such as vm.*", s)
		}
		out.AllowSysctls = append(out.AllowSysctls, s)
	}
	for _, l := range []*[]string{&out.AllowBinds, &out.AllowCaps, &out.AllowSysctls} {
		slices.Sort(*l)
		*l = slices.Compact(*l)
	}
	return out, nil
}

// EffectivePolicy is everything a node's policy lets containers have,
// defaults included: what gitorc node inspect shows.
type EffectivePolicy struct {
	// Binds are the host paths tasks may bind (none: named volumes and
	// tmpfs only).
	Binds        []string `json:"binds"`
	Capabilities []string `json:"capabilities"`
	Sysctls      []string `json:"sysctls"`
	Privileged   bool     `json:"privileged"`
	// Unconfined: tasks may run without the default seccomp/AppArmor
	// profile.
	Unconfined bool `json:"unconfined"`
}

// Effective is the policy with the defaults it builds on. A nil policy is
// the default one.
func (p *NodePolicy) Effective() EffectivePolicy {
	if p == nil {
		p = &NodePolicy{}
	}
	e := EffectivePolicy{Binds: append([]string{}, p.AllowBinds...), Privileged: p.AllowPrivileged, Unconfined: p.AllowUnconfined}
	e.Capabilities = append(append([]string{}, DefaultCapabilities...), p.AllowCaps...)
	e.Sysctls = append(append([]string{}, DefaultSysctls...), p.AllowSysctls...)
	for _, l := range []*[]string{&e.Capabilities, &e.Sysctls} {
		slices.Sort(*l)
		*l = slices.Compact(*l)
	}
	return e
}
