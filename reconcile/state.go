package reconcile

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/gitorc/gitorc/cluster/api"
)

// MergeSyncState is the three-way merge of the sync state a writer read
// (base), what it wants to write (ours) and what the store holds now
// (theirs), field by field: a field ours left as it was in base takes
// theirs, any other takes ours. The sync controller holds the state for
// the length of a rollout; this keeps it from undoing what an operator
// wrote meanwhile. Meta is left to the store.
func MergeSyncState(base, ours, theirs api.SyncState) api.SyncState {
	b, o, t := stateFields(base), stateFields(ours), stateFields(theirs)
	out := map[string]json.RawMessage{}
	for _, m := range []map[string]json.RawMessage{b, o, t} {
		for k := range m {
			src := o
			if bytes.Equal(o[k], b[k]) {
				src = t
			}
			if v, ok := src[k]; ok {
				out[k] = v
			} else {
				delete(out, k)
			}
		}
	}
	raw, err := json.Marshal(out)
	if err != nil {
		panic(fmt.Sprintf("reconcile: merge sync state: %v", err)) // raw JSON always marshals
	}
	var merged api.SyncState
	if err := json.Unmarshal(raw, &merged); err != nil {
		panic(fmt.Sprintf("reconcile: merge sync state: %v", err)) // fields of a SyncState always decode
	}
	merged.Meta = theirs.Meta
	return merged
}

func stateFields(s api.SyncState) map[string]json.RawMessage {
	s.Meta = api.Meta{}
	b, err := json.Marshal(s)
	if err != nil {
		panic(fmt.Sprintf("reconcile: sync state does not marshal: %v", err))
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	return m
}
