package reconcile

import (
	"fmt"

	"github.com/gitorc/gitorc/cluster/api"
)

// policyProblems are the needs of desired services (bind of a host path,
// a capability beyond the default set, a host-level sysctl, privileged,
// unconfined) that no node of the cluster allows: such a service could
// run nowhere, and the revision is not applied. The loader reports the
// same at the stack file's line when it is given the policies (LoadAllFor);
// this check also covers stacks deployed by hand.
func policyProblems(desired, actual State) []string {
	var out []string
	for _, s := range desired.Services {
		for _, n := range api.Needs(&s.Task.Container) {
			if !api.AllowedByAny(actual.Policies, n) {
				out = append(out, fmt.Sprintf("service %s: task.container.%s: %s", s.Name, n.Field, api.NoNodeAllows(n)))
			}
		}
	}
	return out
}
