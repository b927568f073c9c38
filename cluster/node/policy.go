package node

import (
	"github.com/gitorc/gitorc/cluster/api"
)

// nodePolicy is the policy the node runs with: what its state keeps, or
// the default one.
func (st *State) nodePolicy() api.NodePolicy {
	if st.Policy == nil {
		return api.NodePolicy{}
	}
	return *st.Policy
}
