package scheduler

import (
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
)

// policyFilter passes nodes whose policy (api.NodePolicy, reported on the
// node's description) grants everything the task's container needs beyond
// the defaults: binds of host paths, capabilities, sysctls, privileged,
// unconfined profiles. A node that reports no policy grants none. The
// worker refuses such a task itself too; this keeps it from being sent.
type policyFilter struct{}

func (policyFilter) Name() string { return "policy" }

func (policyFilter) Enabled(g *group) bool { return len(g.needs) > 0 }

func (policyFilter) Check(g *group, n *nodeState) int {
	for i, need := range g.needs {
		if !n.node.Description.Policy.Allows(need) {
			return i + 1
		}
	}
	return 0
}

func (policyFilter) Explain(g *group, code, n int) string {
	need := g.needs[code-1]
	if n == g.nodes {
		return "no node allows " + need.String() + " (gitorc join " + need.Flag() + ")"
	}
	return count(n, "does not allow ", "do not allow ") + need.String() + " (" + need.Flag() + ")"
}

// needsKey identifies a list of needs, for grouping and caching.
func needsKey(needs []api.Need) string {
	var b strings.Builder
	for _, n := range needs {
		b.WriteByte(byte('0' + n.Kind))
		b.WriteString(n.Value)
		b.WriteByte(0)
	}
	return b.String()
}
