package server

import (
	"errors"
	"net/http"
	"sort"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/store"
)

// listRegistries lists the registry logins: hosts and user names, never
// a password.
func (s *server) listRegistries(r *http.Request) (any, error) {
	out := []controlapi.Registry{}
	err := s.st.View(func(tx store.ReadTx) error {
		secrets, err := store.Find[api.Secret](tx, store.All())
		if err != nil {
			return err
		}
		for _, x := range secrets {
			host := x.RegistryHost()
			if host == "" {
				continue
			}
			l, err := x.RegistryLogin()
			if err != nil {
				return err
			}
			out = append(out, controlapi.Registry{Host: host, Username: l.Username, UpdatedAt: x.UpdatedAt})
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out, err
}

// loginRegistry sets the login for a registry host.
func (s *server) loginRegistry(r *http.Request) (any, error) {
	host := r.PathValue("host")
	var req controlapi.RegistryLoginRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Username == "" || req.Password == "" {
		return nil, statusf(http.StatusBadRequest, "registry %s: username and password are required", host)
	}
	spec, err := api.RegistrySecret(host, api.RegistryLogin{Username: req.Username, Password: api.SecretBytes(req.Password)})
	if err != nil {
		return nil, statusf(http.StatusBadRequest, "%v", err)
	}
	var out controlapi.Registry
	err = s.write(r, func(tx store.Tx) error {
		cur, err := store.Find[api.Secret](tx, store.ByName(spec.Name))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if len(cur) > 0 {
			cur[0].Spec = spec
			err = tx.Update(cur[0])
		} else {
			err = tx.Create(&api.Secret{Spec: spec})
		}
		out = controlapi.Registry{Host: host, Username: req.Username, UpdatedAt: s.now()}
		return err
	})
	return out, err
}

// logoutRegistry removes a registry's login.
func (s *server) logoutRegistry(r *http.Request) (any, error) {
	host := r.PathValue("host")
	err := s.write(r, func(tx store.Tx) error {
		cur, err := store.Find[api.Secret](tx, store.ByName(api.RegistrySecretPrefix+host))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if len(cur) == 0 || cur[0].RegistryHost() != host {
			return statusf(http.StatusNotFound, "no login for registry %s", host)
		}
		return tx.Delete(store.KindSecret, cur[0].ID, cur[0].Version)
	})
	return controlapi.Registry{Host: host}, err
}
