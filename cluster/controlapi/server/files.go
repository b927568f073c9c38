package server

import (
	"net/http"
	"slices"
	"sort"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/store"
)

// listSecrets lists the secrets tasks may use, each version apart: the
// current content of each, and the earlier versions the cluster keeps for
// the tasks that still run with them. Never their content; never the
// cluster's own (internal) secrets.
func (s *server) listSecrets(r *http.Request) (any, error) {
	out := []controlapi.FileObject{}
	err := s.st.View(func(tx store.ReadTx) error {
		secrets, err := store.Find[api.Secret](tx, store.All())
		if err != nil {
			return err
		}
		users, err := readFileUsers(tx, func(c *api.ContainerSpec) []api.FileRef { return c.Secrets })
		if err != nil {
			return err
		}
		for _, x := range secrets {
			if x.Internal() {
				continue
			}
			out = append(out, users.object(x.Meta, x.Spec.Name, x.Spec.Stack, x.Spec.DataHash, x.Spec.External, x.VersionOf()))
		}
		return nil
	})
	sortFileObjects(out)
	return out, err
}

// listConfigs is listSecrets for configs.
func (s *server) listConfigs(r *http.Request) (any, error) {
	out := []controlapi.FileObject{}
	err := s.st.View(func(tx store.ReadTx) error {
		configs, err := store.Find[api.Config](tx, store.All())
		if err != nil {
			return err
		}
		users, err := readFileUsers(tx, func(c *api.ContainerSpec) []api.FileRef { return c.Configs })
		if err != nil {
			return err
		}
		for _, x := range configs {
			out = append(out, users.object(x.Meta, x.Spec.Name, x.Spec.Stack, x.Spec.DataHash, x.Spec.External, x.VersionOf()))
		}
		return nil
	})
	sortFileObjects(out)
	return out, err
}

// fileUsers are the services and the live tasks that refer to each
// version of a secret or config (by api.FileRef.Key).
type fileUsers struct {
	services map[string][]string
	tasks    map[string]int
}

func readFileUsers(tx store.ReadTx, refs func(*api.ContainerSpec) []api.FileRef) (*fileUsers, error) {
	u := &fileUsers{services: map[string][]string{}, tasks: map[string]int{}}
	svcs, err := store.Find[api.Service](tx, store.All())
	if err != nil {
		return nil, err
	}
	for _, svc := range svcs {
		for _, r := range refs(&svc.Spec.Task.Container) {
			u.services[r.Key()] = append(u.services[r.Key()], svc.Spec.Name)
		}
	}
	tasks, err := store.Find[api.Task](tx, store.All())
	if err != nil {
		return nil, err
	}
	for _, t := range tasks {
		if t.Status.State.Terminal() {
			continue
		}
		for _, r := range refs(&t.Spec.Container) {
			u.tasks[r.Key()]++
		}
	}
	return u, nil
}

// object describes one version. The current version is also used by
// the references that are not pinned (external objects).
func (u *fileUsers) object(m api.Meta, name, stack, hash string, external bool, versionOf string) controlapi.FileObject {
	o := controlapi.FileObject{ID: m.ID, Name: name, Stack: stack, DataHash: hash, External: external, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
	keys := []string{api.VersionName(name, hash)}
	if versionOf != "" {
		o.Name, o.VersionOf, keys = versionOf, name, []string{name}
	} else {
		keys = append(keys, name)
	}
	for _, k := range keys {
		o.Services = append(o.Services, u.services[k]...)
		o.Tasks += u.tasks[k]
	}
	sort.Strings(o.Services)
	o.Services = slices.Compact(o.Services)
	return o
}

func sortFileObjects(out []controlapi.FileObject) {
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].VersionOf < out[j].VersionOf // the current version first
	})
}
