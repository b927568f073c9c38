package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Registry credentials are internal secrets (LabelInternal "registry"),
// encrypted at rest and replicated as every secret is, named
// RegistrySecretPrefix + host. The managers deliver them, in the node's
// assignment set and over its mutual-TLS session only, to the workers
// whose tasks pull from that host; workers hold them in memory.
const (
	RegistrySecretPrefix = "registry/"
	InternalRegistry     = "registry"
)

// RegistryLogin is what a registry login stores.
type RegistryLogin struct {
	Username string      `json:"username"`
	Password SecretBytes `json:"-"`
	// UpdatedAt is when the login was last set.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// registryData is the stored form (the secret's Data): the password goes
// in the encrypted data, never in a label or the spec.
type registryData struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// RegistrySecret makes the internal secret that holds a login for host.
func RegistrySecret(host string, l RegistryLogin) (SecretSpec, error) {
	if err := ValidRegistryHost(host); err != nil {
		return SecretSpec{}, err
	}
	b, err := json.Marshal(registryData{Username: l.Username, Password: string(l.Password.Reveal())})
	if err != nil {
		return SecretSpec{}, err
	}
	return SecretSpec{Name: RegistrySecretPrefix + host, Labels: map[string]string{LabelInternal: InternalRegistry},
		Data: SecretBytes(b)}, nil
}

// RegistryHost returns the host a registry secret is for, or "" when s
// holds no registry login.
func (s *Secret) RegistryHost() string {
	if s.Spec.Labels[LabelInternal] != InternalRegistry {
		return ""
	}
	return strings.TrimPrefix(s.Spec.Name, RegistrySecretPrefix)
}

// RegistryLogin decodes the login a registry secret holds.
func (s *Secret) RegistryLogin() (RegistryLogin, error) {
	var d registryData
	if err := json.Unmarshal(s.Spec.Data.Reveal(), &d); err != nil {
		return RegistryLogin{}, fmt.Errorf("registry login for %s: unreadable", s.RegistryHost())
	}
	return RegistryLogin{Username: d.Username, Password: SecretBytes(d.Password), UpdatedAt: s.UpdatedAt}, nil
}

// ValidRegistryHost checks a registry host as image references name it
// ("registry.example.com", "127.0.0.1:5000"): no scheme, no path.
func ValidRegistryHost(host string) error {
	switch {
	case host == "":
		return fmt.Errorf("registry host is empty")
	case strings.Contains(host, "://"):
		return fmt.Errorf("registry host %q: give the host as images name it, without a scheme", host)
	case strings.ContainsAny(host, "/ \t@"):
		return fmt.Errorf("registry host %q: give the host (and port) only", host)
	}
	return nil
}

// ImageRegistry is the host a pull of image asks for credentials: the
// reference's domain, docker.io's registry for a name without one.
func ImageRegistry(image string) string {
	first, _, ok := strings.Cut(image, "/")
	if !ok || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		return "registry-1.docker.io"
	}
	if first == "docker.io" || first == "index.docker.io" {
		return "registry-1.docker.io"
	}
	return first
}
