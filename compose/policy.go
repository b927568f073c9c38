package compose

import (
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/gitorc/gitorc/cluster/api"
)

// securityOpts reads a service's security_opt into ct: the unconfined
// profiles (which need a node that allows them) and no-new-privileges.
// gitorc chooses the profiles itself (containerd's default seccomp
// profile, and AppArmor's where the kernel has it), so any other option
// is refused rather than ignored.
func (c *converter) securityOpts(p []string, opts []string, ct *api.ContainerSpec) {
	for i, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		if k2, v2, ok := strings.Cut(o, ":"); ok && !strings.Contains(o, "=") {
			k, v = k2, v2
		}
		switch {
		case k == "seccomp" && v == "unconfined":
			ct.SeccompUnconfined = true
		case k == "apparmor" && v == "unconfined":
			ct.AppArmorUnconfined = true
		case k == "no-new-privileges" && (v == "" || v == "true"):
			ct.NoNewPrivileges = true
		case k == "no-new-privileges" && v == "false":
		default:
			c.d.errorf(append(append([]string(nil), p...), strconv.Itoa(i)),
				"security_opt %q is not supported: gitorc applies its own seccomp and AppArmor profiles; it understands seccomp=unconfined, apparmor=unconfined (on nodes started with --allow-unconfined) and no-new-privileges", o)
		}
	}
}

// checkPolicies reports, at the line that asks for it, each thing a
// service needs that no node of the cluster allows (Source.Policies).
func (c *converter) checkPolicies(p []string, s types.ServiceConfig, ct *api.ContainerSpec) {
	if !c.checkPolicy {
		return
	}
	at := func(rel ...string) []string { return append(append([]string(nil), p...), rel...) }
	for _, n := range api.Needs(ct) {
		if api.AllowedByAny(c.policies, n) {
			continue
		}
		var where []string
		switch {
		case n.Kind == api.NeedPrivileged:
			where = at("privileged")
		case n.Kind == api.NeedBind:
			i, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(n.Field, "mounts["), "]"))
			where = at("volumes", strconv.Itoa(i))
		case n.Kind == api.NeedCap:
			where = at("cap_add", strings.TrimSuffix(strings.TrimPrefix(n.Field, "cap_add["), "]"))
		case n.Kind == api.NeedSysctl:
			where = at("sysctls", n.Value)
		case n.Kind == api.NeedUnconfined:
			where = at("security_opt")
			for i, o := range s.SecurityOpt {
				if strings.HasPrefix(o, n.Field) {
					where = at("security_opt", strconv.Itoa(i))
					break
				}
			}
		}
		c.d.errorf(where, "%s", api.NoNodeAllows(n))
	}
}
