package reconcile

import (
	"fmt"
	"slices"

	"github.com/gitorc/gitorc/cluster/api"
)

// Step 4 of a sync: which revision to run, and what to do with it.

// target is what a sync does.
type target struct {
	commit  string // the revision the cluster should run; empty: none new
	trigger api.SyncTrigger
	apply   bool   // roll commit out
	heal    bool   // the cluster runs commit, synced: restore drift only
	note    string // a rollback pin released, for the messages
}

// decide picks the revision the cluster should run. It releases the
// rollback pin on st when a manual sync or a new commit ends it, and
// records the commit a pin took effect at. A pin not in effect yet is
// applied by whatever sync comes first, a manual one included (gitorc
// rollback asks for one).
func decide(st *api.SyncState, head string, trigger api.SyncTrigger) target {
	var note string
	if st.Pin != nil {
		pin := *st.Pin // st's pointer may be the store's: never write through it
		switch {
		case trigger == api.TriggerManual && pin.Head != "":
			note = fmt.Sprintf("rollback pin to %s released by gitorc sync", short(pin.Revision))
			st.Pin = nil
		case pin.Head != "" && pin.Head != head:
			note = fmt.Sprintf("rollback pin to %s released by the new commit %s", short(pin.Revision), short(head))
			st.Pin = nil
		default:
			if pin.Head == "" {
				pin.Head = head
				st.Pin = &pin
			}
			if st.Revision == pin.Revision && st.Phase == api.SyncSynced {
				return target{commit: pin.Revision, heal: true}
			}
			return target{commit: pin.Revision, trigger: api.TriggerRollback, apply: true}
		}
	}
	switch {
	case slices.Contains(st.FailedRevisions, head):
		return target{note: note}
	case head == st.Revision && st.Phase == api.SyncSynced:
		return target{commit: head, heal: true, note: note}
	}
	return target{commit: head, trigger: trigger, apply: true, note: note}
}
