package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/netip"
	"slices"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/store"
)

// Objects made with these endpoints are external ones: stacks refer to
// them (external: true) and never change or prune them; Git owns the
// others, which these endpoints refuse to touch.

// stackOwned says why an object is not the API's to change: a stack owns
// it.
func stackOwned(kind, name string, labels map[string]string) error {
	if labels[api.LabelManagedBy] != "" || labels[api.LabelVersionOf] != "" || labels[api.LabelInternal] != "" {
		return statusf(http.StatusConflict, "%s %s belongs to a stack (or to the cluster): change it in Git", kind, name)
	}
	return nil
}

// createSecret stores a secret for stacks to use as external.
func (s *server) createSecret(r *http.Request) (any, error) {
	var req controlapi.CreateFileRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if s.hash == nil {
		return nil, statusf(http.StatusServiceUnavailable, "this node cannot create secrets (no cluster identity)")
	}
	hash, err := s.hash(r.Context(), req.Data)
	if err != nil {
		return nil, statusf(http.StatusServiceUnavailable, "hash the secret: %v", err)
	}
	spec := api.SecretSpec{Name: req.Name, Labels: req.Labels, External: true, DataHash: hash, Data: api.SecretBytes(req.Data)}
	if err := spec.Validate(); err != nil {
		return nil, statusf(http.StatusBadRequest, "%v", err)
	}
	obj := &api.Secret{Spec: spec}
	err = s.write(r, func(tx store.Tx) error { return tx.Create(obj) })
	if errors.Is(err, store.ErrNameConflict) || errors.Is(err, store.ErrExists) {
		return nil, statusf(http.StatusConflict, "secret %s exists: remove it first (gitorc secret rm %s), or rotate it in Git", req.Name, req.Name)
	}
	return controlapi.FileObject{ID: obj.ID, Name: req.Name, DataHash: hash, External: true, CreatedAt: obj.CreatedAt, UpdatedAt: obj.UpdatedAt}, err
}

// createConfig stores a config for stacks to use as external.
func (s *server) createConfig(r *http.Request) (any, error) {
	var req controlapi.CreateFileRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(req.Data)
	spec := api.ConfigSpec{Name: req.Name, Labels: req.Labels, External: true, Data: req.Data, DataHash: "sha256:" + hex.EncodeToString(sum[:])}
	if err := spec.Validate(); err != nil {
		return nil, statusf(http.StatusBadRequest, "%v", err)
	}
	obj := &api.Config{Spec: spec}
	err := s.write(r, func(tx store.Tx) error { return tx.Create(obj) })
	if errors.Is(err, store.ErrNameConflict) || errors.Is(err, store.ErrExists) {
		return nil, statusf(http.StatusConflict, "config %s exists: remove it first (gitorc config rm %s)", req.Name, req.Name)
	}
	return controlapi.FileObject{ID: obj.ID, Name: req.Name, DataHash: spec.DataHash, External: true, CreatedAt: obj.CreatedAt, UpdatedAt: obj.UpdatedAt}, err
}

// usedBy lists the services whose spec refers to name.
func usedBy(tx store.ReadTx, uses func(*api.ServiceSpec) bool) ([]string, error) {
	svcs, err := store.Find[api.Service](tx, store.All())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, svc := range svcs {
		if uses(&svc.Spec) {
			out = append(out, svc.Spec.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}

func refersTo(refs []api.FileRef, name string) bool {
	return slices.ContainsFunc(refs, func(r api.FileRef) bool { return r.Name == name })
}

// removeSecret removes a secret made with createSecret, unless a service
// uses it.
func (s *server) removeSecret(r *http.Request) (any, error) {
	name := r.PathValue("name")
	err := s.write(r, func(tx store.Tx) error {
		found, err := store.Find[api.Secret](tx, store.ByName(name))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if len(found) == 0 {
			return statusf(http.StatusNotFound, "secret %q not found", name)
		}
		x := found[0]
		if err := stackOwned("secret", name, x.Spec.Labels); err != nil {
			return err
		}
		users, err := usedBy(tx, func(s *api.ServiceSpec) bool { return refersTo(s.Task.Container.Secrets, name) })
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return statusf(http.StatusConflict, "secret %s is used by %v: remove it from their stacks first", name, users)
		}
		return tx.Delete(store.KindSecret, x.ID, x.Version)
	})
	return controlapi.FileObject{Name: name}, err
}

// removeConfig is removeSecret for configs.
func (s *server) removeConfig(r *http.Request) (any, error) {
	name := r.PathValue("name")
	err := s.write(r, func(tx store.Tx) error {
		found, err := store.Find[api.Config](tx, store.ByName(name))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if len(found) == 0 {
			return statusf(http.StatusNotFound, "config %q not found", name)
		}
		x := found[0]
		if err := stackOwned("config", name, x.Spec.Labels); err != nil {
			return err
		}
		users, err := usedBy(tx, func(s *api.ServiceSpec) bool { return refersTo(s.Task.Container.Configs, name) })
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return statusf(http.StatusConflict, "config %s is used by %v: remove it from their stacks first", name, users)
		}
		return tx.Delete(store.KindConfig, x.ID, x.Version)
	})
	return controlapi.FileObject{Name: name}, err
}

// createNetwork makes a network for stacks to join as external.
func (s *server) createNetwork(r *http.Request) (any, error) {
	var req controlapi.CreateNetworkRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	spec := api.NetworkSpec{Name: req.Name, Labels: req.Labels, Driver: api.DefaultNetworkDriver,
		Internal: req.Internal, Attachable: req.Attachable, Subnet: req.Subnet}
	if err := spec.Validate(); err != nil {
		return nil, statusf(http.StatusBadRequest, "%v", err)
	}
	obj := &api.Network{Spec: spec}
	err := s.write(r, func(tx store.Tx) error {
		if spec.Subnet != "" {
			cl, err := store.Get[api.Cluster](tx, api.ClusterID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if cl != nil {
				if pool := cl.Spec.Network.Overlaps(netip.MustParsePrefix(spec.Subnet)); pool != "" {
					return statusf(http.StatusBadRequest, "subnet %s overlaps the cluster's %s", spec.Subnet, pool)
				}
			}
		}
		return tx.Create(obj)
	})
	if errors.Is(err, store.ErrNameConflict) || errors.Is(err, store.ErrExists) {
		return nil, statusf(http.StatusConflict, "network %s exists", req.Name)
	}
	return obj, err
}

// removeNetwork removes a network made with createNetwork, unless a
// service is on it.
func (s *server) removeNetwork(r *http.Request) (any, error) {
	ref := r.PathValue("network")
	var gone *api.Network
	err := s.write(r, func(tx store.Tx) error {
		n, err := findNetwork(tx, ref)
		if err != nil {
			return err
		}
		if err := stackOwned("network", n.Spec.Name, n.Spec.Labels); err != nil {
			return err
		}
		users, err := usedBy(tx, func(s *api.ServiceSpec) bool {
			return slices.ContainsFunc(s.Networks, func(a api.NetworkAttachment) bool { return a.Target == n.Spec.Name })
		})
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return statusf(http.StatusConflict, "network %s has services %v: remove them from it first", n.Spec.Name, users)
		}
		gone = n
		return tx.Delete(store.KindNetwork, n.ID, n.Version)
	})
	return gone, err
}
