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
// both finished and meant to stay finished, unless it ended on its own
// and was replaced (api.Task.Replaced): the node keeps such a task, and
// its log, while it is history, as it did before it was replaced.
func Assigned(t *api.Task) bool {
	if t.Status.State < api.TaskAssigned {
		return false
	}
	return t.Replaced || !(t.Status.State.Terminal() && t.DesiredState.Terminal())
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
	secrets, configs := map[string]api.FileRef{}, map[string]api.FileRef{}
	registries := map[string]bool{}
	for _, t := range tasks {
		if !Assigned(t) {
			continue
		}
		a.set.Tasks = append(a.set.Tasks, t)
		a.ids[t.ID] = true
		fmt.Fprintf(&key, "t%s@%d;", t.ID, t.Version)
		registries[api.ImageRegistry(t.Spec.Container.Image)] = true
		for _, r := range t.Spec.Container.Secrets {
			secrets[r.Key()] = r
		}
		for _, r := range t.Spec.Container.Configs {
			configs[r.Key()] = r
		}
	}
	for _, k := range sortedKeys(secrets) {
		s, err := secretVersion(tx, secrets[k])
		if err != nil {
			return nil, err
		}
		if s == nil || s.Internal() {
			continue // the agent rejects the task that needs it
		}
		a.set.Secrets = append(a.set.Secrets, wire.SecretFile{Name: k, Data: wire.Plaintext(s.Spec.Data.Reveal())})
		fmt.Fprintf(&key, "s%s@%d;", s.ID, s.Version)
	}
	for _, k := range sortedKeys(configs) {
		c, err := configVersion(tx, configs[k])
		if err != nil {
			return nil, err
		}
		if c == nil {
			continue
		}
		a.set.Configs = append(a.set.Configs, wire.ConfigFile{Name: k, Data: c.Spec.Data})
		fmt.Fprintf(&key, "c%s@%d;", c.ID, c.Version)
	}
	for _, host := range sortedKeys(registries) {
		s, err := findByName[api.Secret](tx, api.RegistrySecretPrefix+host)
		if err != nil {
			return nil, err
		}
		if s == nil || s.RegistryHost() != host {
			continue
		}
		l, err := s.RegistryLogin()
		if err != nil {
			return nil, err
		}
		a.set.Registries = append(a.set.Registries, wire.RegistryLogin{Host: host, Username: l.Username, Password: wire.Plaintext(l.Password.Reveal())})
		fmt.Fprintf(&key, "r%s@%d;", s.ID, s.Version)
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

// secretVersion returns the secret holding the content r wants: the
// object itself when r is not pinned or its content is that version, else
// the object that keeps the earlier version; nil when neither exists.
func secretVersion(tx store.ReadTx, r api.FileRef) (*api.Secret, error) {
	s, err := findByName[api.Secret](tx, r.Name)
	if err != nil || (s != nil && (r.Version == "" || s.Spec.DataHash == r.Version)) {
		return s, err
	}
	old, err := findByName[api.Secret](tx, r.Key())
	if err != nil || old == nil || old.VersionOf() != r.Name {
		return nil, err
	}
	return old, nil
}

// configVersion is secretVersion for configs.
func configVersion(tx store.ReadTx, r api.FileRef) (*api.Config, error) {
	c, err := findByName[api.Config](tx, r.Name)
	if err != nil || (c != nil && (r.Version == "" || c.Spec.DataHash == r.Version)) {
		return c, err
	}
	old, err := findByName[api.Config](tx, r.Key())
	if err != nil || old == nil || old.VersionOf() != r.Name {
		return nil, err
	}
	return old, nil
}

func sortedKeys[V any](m map[string]V) []string {
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
