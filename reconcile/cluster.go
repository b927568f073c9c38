package reconcile

import (
	"context"

	"github.com/gitorc/gitorc/cluster/api"
)

// Cluster is what the sync controller needs from the cluster's store. It
// is declared here, by its one consumer; reconcile/storecluster implements
// it over cluster/store, and tests use an in-memory fake.
type Cluster interface {
	// Actual returns every network, secret, config, volume and service the
	// cluster holds, owned by gitorc or not, as specs with their labels.
	// Secret specs come without Data: Plan compares DataHash.
	Actual(ctx context.Context) (State, error)
	// Observe returns, for each service name, the service (nil when there
	// is none) and its tasks, as Track reads them.
	Observe(ctx context.Context, services []string) (map[string]Observed, error)
	// Sync returns the cluster's sync state; the zero SyncState when none
	// was ever written.
	Sync(ctx context.Context) (api.SyncState, error)
	// Commit writes c in one store transaction: all of it or, on any
	// error, nothing.
	Commit(ctx context.Context, c Commit) error
}

// Commit is one atomic write of the sync controller: a revision's object
// changes (possibly none) together with the sync state and history that
// describe them, so that the cluster never holds a revision's objects
// without the state that says which revision they are.
type Commit struct {
	// Put are stamped specs to create, or to replace the object of the
	// same kind and name. A replaced service keeps its old spec as
	// PreviousSpec and loses the status of its last rollout; the store
	// keeps a secret's payload when Data is nil.
	Put State
	// Delete are objects to remove, by kind and name. An object that is
	// already gone is not an error.
	Delete []Ref
	// State replaces the sync state (its Meta is the store's business).
	State api.SyncState
	// Base, when set, is the sync state State was derived from: State is
	// then merged onto the stored one with MergeSyncState, so that a field
	// an operator changed meanwhile (a rollback pin, suspend) survives
	// unless this commit changes it too.
	Base *api.SyncState
	// Records are created, or replace the record with their ID.
	Records []api.SyncRecord
}

// Ref names one object.
type Ref struct {
	Kind Kind
	Name string
}

// Empty reports whether the commit changes no objects.
func (c Commit) Empty() bool {
	p := c.Put
	return len(c.Delete) == 0 && len(p.Networks)+len(p.Secrets)+len(p.Configs)+len(p.Volumes)+len(p.Services) == 0
}

// Changes turns a changeset into the object part of a Commit: the stamped
// desired objects it creates or updates, and the objects it deletes.
// Unchanged objects are not rewritten.
func Changes(cs Changeset, desired State) (put State, del []Ref) {
	act := map[key]Action{}
	for _, s := range cs.Steps {
		switch s.Action {
		case Create, Update:
			act[key{s.Kind, s.Name}] = s.Action
		case Delete:
			del = append(del, Ref{Kind: s.Kind, Name: s.Name})
		}
	}
	stamped := Stamp(desired)
	for _, n := range stamped.Networks {
		if _, ok := act[key{KindNetwork, n.Name}]; ok {
			put.Networks = append(put.Networks, n)
		}
	}
	for _, s := range stamped.Secrets {
		if _, ok := act[key{KindSecret, s.Name}]; ok {
			put.Secrets = append(put.Secrets, s)
		}
	}
	for _, c := range stamped.Configs {
		if _, ok := act[key{KindConfig, c.Name}]; ok {
			put.Configs = append(put.Configs, c)
		}
	}
	for _, v := range stamped.Volumes {
		if _, ok := act[key{KindVolume, v.Name}]; ok {
			put.Volumes = append(put.Volumes, v)
		}
	}
	for _, s := range stamped.Services {
		if _, ok := act[key{KindService, s.Name}]; ok {
			put.Services = append(put.Services, s)
		}
	}
	return put, del
}
