package main

import (
	"slices"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/node"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// policyFlags are the node policy's flags of bootstrap, join and daemon:
// what this node lets containers have beyond Docker's defaults. They are
// kept in the data dir (nodeState.Policy); daemon changes the ones it is
// given.
type policyFlags struct {
	binds, caps, sysctls   []string
	privileged, unconfined bool
}

const (
	flagAllowBind       = "allow-bind"
	flagAllowCap        = "allow-cap"
	flagAllowSysctl     = "allow-sysctl"
	flagAllowPrivileged = "allow-privileged"
	flagAllowUnconfined = "allow-unconfined"
	// policyNone clears a list flag on gitorc daemon (--allow-bind none).
	policyNone = "none"
)

func (f *policyFlags) add(fl *pflag.FlagSet) {
	fl.StringArrayVar(&f.binds, flagAllowBind, nil, "host path tasks may bind, with what lies below it (repeatable; default none: named volumes and tmpfs only)")
	fl.StringArrayVar(&f.caps, flagAllowCap, nil, "capability tasks may add beyond Docker's default set, e.g. NET_ADMIN, or ALL (repeatable)")
	fl.StringArrayVar(&f.sysctls, flagAllowSysctl, nil, "sysctl tasks may set beyond the namespaced ones (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, kernel.domainname, kernel.hostname); a name or a prefix such as vm.* (repeatable)")
	fl.BoolVar(&f.privileged, flagAllowPrivileged, false, "let tasks run privileged: true (root on this host)")
	fl.BoolVar(&f.unconfined, flagAllowUnconfined, false, "let tasks run without the default seccomp and AppArmor profiles (security_opt: [seccomp=unconfined])")
}

// policy is the node policy the flags give.
func (f *policyFlags) policy() (*api.NodePolicy, error) {
	p, err := api.NodePolicy{AllowBinds: f.binds, AllowCaps: f.caps, AllowSysctls: f.sysctls,
		AllowPrivileged: f.privileged, AllowUnconfined: f.unconfined}.Normalize()
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// update changes, in st, the parts of the policy given on the command
// line (gitorc daemon), keeping the others; "none" empties a list. It
// reports whether anything was given.
func (f *policyFlags) update(fl *pflag.FlagSet, st *node.State) (bool, error) {
	var p api.NodePolicy
	if st.Policy != nil {
		p = *st.Policy
	}
	changed := false
	list := func(name string, dst *[]string, vals []string) {
		if fl.Changed(name) {
			changed = true
			*dst = slices.DeleteFunc(slices.Clone(vals), func(v string) bool { return v == policyNone })
		}
	}
	list(flagAllowBind, &p.AllowBinds, f.binds)
	list(flagAllowCap, &p.AllowCaps, f.caps)
	list(flagAllowSysctl, &p.AllowSysctls, f.sysctls)
	if fl.Changed(flagAllowPrivileged) {
		changed, p.AllowPrivileged = true, f.privileged
	}
	if fl.Changed(flagAllowUnconfined) {
		changed, p.AllowUnconfined = true, f.unconfined
	}
	if !changed {
		return false, nil
	}
	n, err := p.Normalize()
	if err != nil {
		return false, err
	}
	st.Policy = &n
	return true, nil
}

// clusterPolicies are the policies of the cluster's nodes, for stack
// deploy to refuse what none allows at its line. ok is false when the
// nodes cannot be read: the managers' planner refuses it then (without
// the line).
func clusterPolicies(cmd *cobra.Command) (policies []api.NodePolicy, ok bool) {
	nodes, err := newAPIClient(cmd).Nodes(cmd.Context())
	if err != nil {
		return nil, false
	}
	return controlapi.NodePolicies(nodes), true
}
