package dispatcher

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/gitorc/gitorc/cluster/store"
)

// Assigned reports whether a task on a node belongs in the node's
// assignment set: it has been placed (assigned or later), and it is not
// both finished and meant to stay finished.
func Assigned(t *api.Task) bool {
	if t.Status.State < api.TaskAssigned {
		return false
	}
	return !(t.Status.State.Terminal() && t.DesiredState.Terminal())
}

// assignment is a node's assignment set and a key that changes whenever
// the set does (IDs and versions of everything in it, no payloads).
type assignment struct {
	set *wire.AssignmentSet
	key string
	ids map[string]bool // task IDs in the set
}

// assignmentOf reads a node's assignment set.
func assignmentOf(tx store.ReadTx, nodeID string) (*assignment, error) {
	tasks, err := store.Find[api.Task](tx, store.ByNode(nodeID))
	if err != nil {
		return nil, fmt.Errorf("tasks of node %s: %w", nodeID, err)
	}
	a := &assignment{set: &wire.AssignmentSet{Tasks: []*api.Task{}}, ids: map[string]bool{}}
	var key strings.Builder
	secrets, configs := map[string]bool{}, map[string]bool{}
	for _, t := range tasks {
		if !Assigned(t) {
			continue
		}
		a.set.Tasks = append(a.set.Tasks, t)
		a.ids[t.ID] = true
		fmt.Fprintf(&key, "t%s@%d;", t.ID, t.Version)
		for _, r := range t.Spec.Container.Secrets {
			secrets[r.Name] = true
		}
		for _, r := range t.Spec.Container.Configs {
			configs[r.Name] = true
		}
	}
	for _, name := range sortedKeys(secrets) {
		s, err := findByName[api.Secret](tx, name)
		if err != nil {
			return nil, err
		}
		if s == nil || s.Internal() {
			continue // the agent rejects the task that needs it
		}
		a.set.Secrets = append(a.set.Secrets, wire.SecretFile{Name: name, Data: wire.Plaintext(s.Spec.Data.Reveal())})
		fmt.Fprintf(&key, "s%s@%d;", s.ID, s.Version)
	}
	for _, name := range sortedKeys(configs) {
		c, err := findByName[api.Config](tx, name)
		if err != nil {
			return nil, err
		}
		if c == nil {
			continue
		}
		a.set.Configs = append(a.set.Configs, wire.ConfigFile{Name: name, Data: c.Spec.Data})
		fmt.Fprintf(&key, "c%s@%d;", c.ID, c.Version)
	}
	a.key = key.String()
	return a, nil
}

// findByName returns the object of type T named name, nil if none.
func findByName[T any, P interface {
	*T
	api.Object
}](tx store.ReadTx, name string) (P, error) {
	objs, err := store.Find[T, P](tx, store.ByName(name))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("find %s: %w", name, err)
	}
	if len(objs) == 0 {
		return nil, nil
	}
	return objs[0], nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// relevant reports whether a change may alter the node's assignment set;
// obj is the changed object (ev.Object), nil if it could not be read.
func relevant(ev store.Event, obj api.Object, nodeID string, current map[string]bool) bool {
	switch ev.Kind {
	case store.KindSecret, store.KindConfig:
		return true // rare; the key comparison drops non-changes
	case store.KindTask:
		if current[ev.ID] {
			return true
		}
		t, ok := obj.(*api.Task)
		return !ok || t.NodeID == nodeID
	}
	return false
}
