package dispatcher

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"time"

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

// assignment is a node's assignment set as read from one store state:
// its tasks (the store's shared objects: only read, and encoded) and the
// payloads they refer to, each with the revision (object ID and
// version) it was read at.
type assignment struct {
	tasks      map[string]*api.Task
	secrets    map[string]revised[wire.SecretFile]
	configs    map[string]revised[wire.ConfigFile]
	registries map[string]revised[wire.RegistryLogin]
}

type revised[T any] struct {
	v   T
	rev string // ID@version of the object it came from
}

func rev(m *api.Meta) string { return fmt.Sprintf("%s@%d", m.ID, m.Version) }

// sentSet is what a session last sent of the assignment set: the tasks as
// sent, the revisions of the payloads, and the set's sequence number.
type sentSet struct {
	seq                          uint64
	tasks                        map[string]*api.Task
	secrets, configs, registries map[string]string
}

// assignmentOf reads a node's assignment set.
func assignmentOf(tx store.ReadTx, nodeID string) (*assignment, error) {
	tasks, err := store.FindShared[api.Task](tx, store.ByNode(nodeID))
	if err != nil {
		return nil, fmt.Errorf("tasks of node %s: %w", nodeID, err)
	}
	a := &assignment{tasks: make(map[string]*api.Task, len(tasks)), secrets: map[string]revised[wire.SecretFile]{},
		configs: map[string]revised[wire.ConfigFile]{}, registries: map[string]revised[wire.RegistryLogin]{}}
	secrets, configs := map[string]api.FileRef{}, map[string]api.FileRef{}
	registries := map[string]bool{}
	for _, t := range tasks {
		if !Assigned(t) {
			continue
		}
		a.tasks[t.ID] = t
		registries[api.ImageRegistry(t.Spec.Container.Image)] = true
		for _, r := range t.Spec.Container.Secrets {
			secrets[r.Key()] = r
		}
		for _, r := range t.Spec.Container.Configs {
			configs[r.Key()] = r
		}
	}
	for k, r := range secrets {
		s, err := secretVersion(tx, r)
		if err != nil {
			return nil, err
		}
		if s == nil || s.Internal() {
			continue // the agent rejects the task that needs it
		}
		a.secrets[k] = revised[wire.SecretFile]{wire.SecretFile{Name: k, Data: wire.Plaintext(s.Spec.Data.Reveal())}, rev(&s.Meta)}
	}
	for k, r := range configs {
		c, err := configVersion(tx, r)
		if err != nil {
			return nil, err
		}
		if c == nil {
			continue
		}
		a.configs[k] = revised[wire.ConfigFile]{wire.ConfigFile{Name: k, Data: c.Spec.Data}, rev(&c.Meta)}
	}
	for host := range registries {
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
		a.registries[host] = revised[wire.RegistryLogin]{wire.RegistryLogin{Host: host, Username: l.Username,
			Password: wire.Plaintext(l.Password.Reveal())}, rev(&s.Meta)}
	}
	return a, nil
}

// full is the complete set.
func (a *assignment) full() *wire.AssignmentSet {
	set := &wire.AssignmentSet{Tasks: make([]*api.Task, 0, len(a.tasks))}
	for _, id := range sortedKeys(a.tasks) {
		set.Tasks = append(set.Tasks, a.tasks[id])
	}
	for _, k := range sortedKeys(a.secrets) {
		set.Secrets = append(set.Secrets, a.secrets[k].v)
	}
	for _, k := range sortedKeys(a.configs) {
		set.Configs = append(set.Configs, a.configs[k].v)
	}
	for _, k := range sortedKeys(a.registries) {
		set.Registries = append(set.Registries, a.registries[k].v)
	}
	return set
}

// delta is what changed since prev, nil if nothing the node needs did.
func (a *assignment) delta(prev *sentSet) *wire.AssignmentSet {
	set := &wire.AssignmentSet{Delta: true, Tasks: []*api.Task{}}
	changed := false
	for _, id := range sortedKeys(a.tasks) {
		t := a.tasks[id]
		if old, ok := prev.tasks[id]; !ok || TaskChanged(old, t) {
			set.Tasks = append(set.Tasks, t)
			changed = true
		}
	}
	for id := range prev.tasks {
		if _, ok := a.tasks[id]; !ok {
			set.RemovedTasks = append(set.RemovedTasks, id)
		}
	}
	for _, k := range sortedKeys(a.secrets) {
		if s := a.secrets[k]; prev.secrets[k] != s.rev {
			set.Secrets = append(set.Secrets, s.v)
		}
	}
	for _, k := range sortedKeys(a.configs) {
		if c := a.configs[k]; prev.configs[k] != c.rev {
			set.Configs = append(set.Configs, c.v)
		}
	}
	for _, k := range sortedKeys(a.registries) {
		if r := a.registries[k]; prev.registries[k] != r.rev {
			set.Registries = append(set.Registries, r.v)
		}
	}
	set.RemovedSecrets = removedKeys(prev.secrets, a.secrets)
	set.RemovedConfigs = removedKeys(prev.configs, a.configs)
	set.RemovedRegistries = removedKeys(prev.registries, a.registries)
	changed = changed || len(set.RemovedTasks)+len(set.Secrets)+len(set.Configs)+len(set.Registries)+
		len(set.RemovedSecrets)+len(set.RemovedConfigs)+len(set.RemovedRegistries) > 0
	if !changed {
		return nil
	}
	sort.Strings(set.RemovedTasks)
	return set
}

func removedKeys[V any](prev map[string]string, cur map[string]V) []string {
	var out []string
	for k := range prev {
		if _, ok := cur[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// newAddrs reports whether a holds a task address that prev did not.
func (a *assignment) newAddrs(prev *sentSet) bool {
	for id, t := range a.tasks {
		if old, ok := prev.tasks[id]; t.Addr != "" && (!ok || old.Addr != t.Addr) {
			return true
		}
	}
	return false
}

// record is a as sent in the set numbered seq.
func (a *assignment) record(seq uint64) *sentSet {
	s := &sentSet{seq: seq, tasks: a.tasks, secrets: make(map[string]string, len(a.secrets)),
		configs: make(map[string]string, len(a.configs)), registries: make(map[string]string, len(a.registries))}
	for k, v := range a.secrets {
		s.secrets[k] = v.rev
	}
	for k, v := range a.configs {
		s.configs[k] = v.rev
	}
	for k, v := range a.registries {
		s.registries[k] = v.rev
	}
	return s
}

// TaskChanged reports whether a node that holds task old needs cur, the
// same task as now stored: anything but its status (which the node
// reported itself), its version and update time, and its ReadyAt (the
// orchestrator's record of the node's report) changed. Swarm's dispatcher
// skips the same status-only updates (equality.TasksEqualStable). A task
// still at most assigned is always sent.
func TaskChanged(old, cur *api.Task) bool {
	if old == cur || old.Version == cur.Version && old.Version != 0 {
		return false
	}
	if cur.Status.State <= api.TaskAssigned {
		return true
	}
	a, b := *old, *cur
	a.Version, b.Version = 0, 0
	a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}
	a.Status, b.Status = api.TaskStatus{}, api.TaskStatus{}
	a.ReadyAt, b.ReadyAt = time.Time{}, time.Time{}
	return !reflect.DeepEqual(a, b)
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
