package containerd

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/containerd/v2/core/remotes/docker"
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

// registryHosts configures the resolver: credentials from the auth file,
// plain HTTP only for the insecure registries.
func registryHosts(insecure []string, authFile string) (docker.RegistryHosts, error) {
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
			c := creds[host]
			return c.user, c.secret, nil
		}))),
	), nil
}
