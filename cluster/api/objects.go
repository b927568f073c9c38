package api

import (
	"fmt"
	"log/slog"
)

// Stack is a named group of services, networks, secrets, configs and
// volumes deployed together from one set of stack files.
type Stack struct {
	Meta
	Spec StackSpec `json:"spec"`
}

// StackSpec names a stack and where it comes from.
type StackSpec struct {
	Name string `json:"name"`
	// Files are the stack's compose files, relative to the repository root.
	Files    []string          `json:"files,omitempty"`
	EnvFiles []string          `json:"env_files,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	// DependsOn names stacks that must be deployed first.
	DependsOn []string `json:"depends_on,omitempty"`
}

// Network is an isolation domain of the overlay.
type Network struct {
	Meta
	Spec NetworkSpec `json:"spec"`
}

// NetworkSpec is a network as a stack file declares it.
type NetworkSpec struct {
	Name   string            `json:"name"`
	Stack  string            `json:"stack,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	Driver string            `json:"driver"` // always "overlay" in a cluster
	// Internal networks have no route out of the cluster.
	Internal   bool `json:"internal,omitempty"`
	Attachable bool `json:"attachable,omitempty"`
	// External networks are not created by the stack; they must exist.
	External bool `json:"external,omitempty"`
	// Subnet is ipam.config[0].subnet. Tasks take their addresses from
	// their node's share of the cluster's task pool whatever networks they
	// join, so a subnet is only checked: it must not overlap the pools.
	Subnet string `json:"subnet,omitempty"`
}

// Volume is a named node-local volume.
type Volume struct {
	Meta
	Spec VolumeSpec `json:"spec"`
}

// VolumeSpec is a volume as a stack file declares it.
type VolumeSpec struct {
	Name       string            `json:"name"`
	Stack      string            `json:"stack,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Driver     string            `json:"driver"` // "local"
	DriverOpts map[string]string `json:"driver_opts,omitempty"`
	External   bool              `json:"external,omitempty"`
}

// Secret is sensitive data delivered to tasks as files on a tmpfs.
// LabelInternal marks the cluster's own secrets (its CA key, join tokens
// and age identity): they are stored, replicated and encrypted at rest as
// every secret is, and are never delivered to a task.
const LabelInternal = "gitorc.internal"

// Internal reports whether the secret is one of the cluster's own.
func (s *Secret) Internal() bool { return s.Spec.Labels[LabelInternal] != "" }

// LabelVersionOf marks a secret or config that keeps an earlier version
// of the object it names (VersionName), for the tasks and the rollback
// that still refer to it; the managers delete it once none does. It is
// never part of a plan.
const LabelVersionOf = "gitorc.version-of"

// VersionOf returns the object a secret keeps an earlier version of, or
// "" when it is an object of its own.
func (s *Secret) VersionOf() string { return s.Spec.Labels[LabelVersionOf] }

// VersionOf returns the object a config keeps an earlier version of, or
// "" when it is an object of its own.
func (c *Config) VersionOf() string { return c.Spec.Labels[LabelVersionOf] }

type Secret struct {
	Meta
	Spec SecretSpec `json:"spec"`
}

// SecretSpec is a secret. Its Data never leaves the store except towards
// the tasks that use it; everywhere else it is known by DataHash.
type SecretSpec struct {
	Name   string            `json:"name"`
	Stack  string            `json:"stack,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// File is where the (sealed) content comes from, relative to the stack.
	File string `json:"file,omitempty"`
	// Environment names the variable the content comes from.
	Environment string `json:"environment,omitempty"`
	External    bool   `json:"external,omitempty"`
	// DataHash is "sha256:<hex>" of the plaintext, shown in diffs.
	DataHash string      `json:"data_hash,omitempty"`
	Data     SecretBytes `json:"-"`
}

// Config is non-sensitive data delivered to tasks as files.
type Config struct {
	Meta
	Spec ConfigSpec `json:"spec"`
}

// ConfigSpec is a config as a stack file declares it.
type ConfigSpec struct {
	Name        string            `json:"name"`
	Stack       string            `json:"stack,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	File        string            `json:"file,omitempty"`
	Environment string            `json:"environment,omitempty"`
	External    bool              `json:"external,omitempty"`
	DataHash    string            `json:"data_hash,omitempty"`
	Data        []byte            `json:"data,omitempty"`
}

// SecretBytes holds secret plaintext. It prints, formats, logs and
// marshals as "[redacted]" so that it cannot leak by accident; Reveal is
// the one explicit way to read it.
type SecretBytes []byte

const redacted = "[redacted]"

// Reveal returns the plaintext. Callers must not log or return it.
func (s SecretBytes) Reveal() []byte { return s }

func (s SecretBytes) String() string               { return redacted }
func (s SecretBytes) GoString() string             { return redacted }
func (s SecretBytes) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (s SecretBytes) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(redacted)) }
func (s SecretBytes) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (s *SecretBytes) UnmarshalText(b []byte) error {
	return fmt.Errorf("secret data cannot be decoded from text")
}
