package containerd

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"

	"github.com/gitorc/gitorc/cluster/api"
)

// dockerAuth is the part of a docker config.json that holds credentials.
type dockerAuth struct {
	Auths map[string]struct {
		Auth          string `json:"auth"`
		Username      string `json:"username"`
		Password      string `json:"password"`
		IdentityToken string `json:"identitytoken"`
	} `json:"auths"`
}

type credential struct{ user, secret string }

// readAuthFile parses a docker-style config.json into credentials by
// registry host. A missing file has no credentials.
func readAuthFile(path string) (map[string]credential, error) {
	out := map[string]credential{}
	if path == "" {
		return out, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	} else if err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	var cfg dockerAuth
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("auth file %s: %w", path, err)
	}
	for key, a := range cfg.Auths {
		c := credential{user: a.Username, secret: a.Password}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return nil, fmt.Errorf("auth file %s: %s: auth is not base64", path, key)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return nil, fmt.Errorf("auth file %s: %s: auth is not user:password", path, key)
			}
			c = credential{user: user, secret: pass}
		}
		if a.IdentityToken != "" {
			c = credential{secret: a.IdentityToken}
		}
		out[authHost(key)] = c
	}
	return out, nil
}

// authHost turns a config.json key ("https://index.docker.io/v1/",
// "registry.example.com:5000") into the host the resolver asks about.
func authHost(key string) string {
	h := strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	switch h {
	case "index.docker.io", "docker.io":
		return "registry-1.docker.io"
	}
	return h
}

// registryHosts configures the resolver: credentials from the managers'
// registry logins (logins, the latest set, in memory) or else the auth
// file, plain HTTP only for the insecure registries.
func registryHosts(insecure []string, authFile string, logins func(host string) (api.RegistryLogin, bool)) (docker.RegistryHosts, error) {
	creds, err := readAuthFile(authFile)
	if err != nil {
		return nil, err
	}
	plain := map[string]bool{}
	for _, h := range insecure {
		plain[h] = true
	}
	return docker.ConfigureDefaultRegistries(
		docker.WithPlainHTTP(func(host string) (bool, error) { return plain[host], nil }),
		docker.WithAuthorizer(docker.NewDockerAuthorizer(docker.WithAuthCreds(func(host string) (string, string, error) {
			if l, ok := logins(host); ok {
				return l.Username, string(l.Password.Reveal()), nil
			}
			c := creds[host]
			return c.user, c.secret, nil
		}))),
	), nil
}

// registryLogins are the managers' registry logins for this node's
// pulls, by host, as the last assignment set gave them: in memory only.
type registryLogins struct {
	mu     sync.Mutex
	byHost map[string]api.RegistryLogin
}

func (r *registryLogins) set(m map[string]api.RegistryLogin) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byHost = m
}

func (r *registryLogins) get(host string) (api.RegistryLogin, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.byHost[host]
	return l, ok
}

// SetRegistryLogins replaces the registry logins the executor pulls
// with (session.RegistryLogins).
func (e *Executor) SetRegistryLogins(m map[string]api.RegistryLogin) { e.logins.set(m) }

// refusedPull explains a registry's 401 or 403: which registry, and
// whether the cluster has a login for it.
func (e *Executor) refusedPull(ref string, err error) error {
	status := "authorization failed"
	var st remoteerrors.ErrUnexpectedStatus
	switch {
	case errors.As(err, &st) && (st.StatusCode == http.StatusUnauthorized || st.StatusCode == http.StatusForbidden):
		status = st.Status
	case errors.Is(err, docker.ErrInvalidAuthorization):
	default:
		return nil
	}
	host := api.ImageRegistry(ref)
	if _, ok := e.logins.get(host); ok {
		return fmt.Errorf("pull %s: registry %s refused the cluster's login (%s): check it with gitorc registry login %s", ref, host, status, host)
	}
	return fmt.Errorf("pull %s: registry %s refused the pull (%s): it needs credentials, and the cluster has no login for it: gitorc registry login %s", ref, host, status, host)
}
