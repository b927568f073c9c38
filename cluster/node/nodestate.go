package node

import (
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/store"
	"golang.org/x/crypto/nacl/secretbox"
)

// State is what a node keeps in its data dir to restart without flags.
type State struct {
	ID            string       `json:"id"`
	Role          api.NodeRole `json:"role"`
	Listen        string       `json:"listen"`
	Advertise     string       `json:"advertise"`
	RaftListen    string       `json:"raft_listen"`
	RaftAdvertise string       `json:"raft_advertise"`
	Managers      []string     `json:"managers"`
	Worker        bool         `json:"worker"`
	Insecure      []string     `json:"insecure_registries,omitempty"`
	// Source is the Git source given at bootstrap, recorded in the
	// cluster's sync state when the node first leads.
	Source *api.SourceSpec `json:"source,omitempty"`
	// WireGuardPort is the overlay's UDP port (0: netplane's default);
	// DNSUpstreams the resolvers (host:port) the node's DNS server
	// forwards names outside the cluster to (none: the host's, read from
	// /etc/resolv.conf when the node starts).
	WireGuardPort uint16 `json:"wireguard_port,omitempty"`
	// Network is the address plan given at bootstrap, written into the
	// store's cluster object when the node first leads.
	Network      *api.NetworkConfig `json:"network,omitempty"`
	DNSUpstreams []string           `json:"dns_upstreams,omitempty"`
	// WebhookListen is where this manager serves POST /hooks/{provider}
	// (plain HTTP, for a TLS proxy in front); empty: no webhooks.
	WebhookListen string `json:"webhook_listen,omitempty"`
	// MetricsListen is where this node serves GET /metrics (Prometheus,
	// plain HTTP); empty: no metrics.
	MetricsListen string `json:"metrics_listen,omitempty"`
	// UIListen is where this manager serves its read-only status page
	// (ui.go; plain HTTP: loopback, or behind a proxy); empty: off.
	UIListen string `json:"ui_listen,omitempty"`
	// Timing is the manager's fault detection (timing.go); nil: defaults.
	Timing *Timing `json:"timing,omitempty"`
	// Policy is what the node lets containers have beyond the defaults
	// (--allow-bind, --allow-cap, …; cmd/gitorc's policy_flags.go); nil: the defaults.
	Policy *api.NodePolicy `json:"policy,omitempty"`
}

// Files of a data dir.
func stateFile(dir string) string     { return filepath.Join(dir, "node.json") }
func pkiDir(dir string) string        { return filepath.Join(dir, "pki") }
func raftDir(dir string) string       { return filepath.Join(dir, "raft") }
func networkDir(dir string) string    { return filepath.Join(dir, "network") }
func socketFile(dir string) string    { return filepath.Join(dir, "gitorc.sock") }
func recipientPath(dir string) string { return filepath.Join(dir, "recipient.txt") }

func loadState(dir string) (*State, error) {
	b, err := os.ReadFile(stateFile(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s holds no gitorc node: run gitorc bootstrap (a new cluster) or gitorc join (an existing one)", dir)
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", stateFile(dir), err)
	}
	return &s, nil
}

func saveState(dir string, s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(stateFile(dir), b, 0o600)
}

// writeFileAtomic writes through a temporary file and a rename, so a crash
// leaves the old file or the new one, never half of one.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// The node's certificate and key are plain files (0600), as every TLS
// server's are: the node needs them before its store can open. The
// cluster's secrets — the CA key, the join tokens, the age identity — are
// sealed with the store's data key (NaCl secretbox), so they are as
// protected as the store's own payloads (and locked with it under autolock).
const (
	caCertFile   = "ca.pem"
	nodeCertFile = "node.pem"
	nodeKeyFile  = "node-key.pem"
	nodeNextFile = "node-next.pem" // a renewed pair being swapped in
	caKeySealed  = "ca-key.sealed"
	tokensSealed = "tokens.sealed"
	identSealed  = "identity.sealed"
	// hookSealed is bootstrap's webhook secret, when it was given one.
	hookSealed = "webhook-secret.sealed"
	// unlockSealed is bootstrap's unlock key, under --autolock.
	unlockSealed = "unlock-key.sealed"
)

func sealFile(key *store.DataKey, path string, plain []byte) error {
	var nonce [24]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return err
	}
	k := [32]byte(*key)
	return writeFileAtomic(path, secretbox.Seal(nonce[:], plain, &nonce, &k), 0o600)
}

func openFile(key *store.DataKey, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 24 {
		return nil, fmt.Errorf("%s: truncated", path)
	}
	var nonce [24]byte
	copy(nonce[:], b[:24])
	k := [32]byte(*key)
	out, ok := secretbox.Open(nil, b[24:], &nonce, &k)
	if !ok {
		return nil, fmt.Errorf("%s: cannot be opened with this cluster's data key", path)
	}
	return out, nil
}

// pki is a node's certificates. The node certificate is swapped when it
// is renewed: TLS configurations read it at each handshake (current).
type pki struct {
	// roots are the root certificates the node trusts (ca.pem): the
	// cluster's, two during a rotation (carotate.go).
	roots atomic.Pointer[trustRoots]
	node  atomic.Pointer[ca.NodeCert]
}

// current is the node's certificate in use.
func (p *pki) current() *ca.NodeCert { return p.node.Load() }

func loadPKI(dir string) (*pki, error) {
	if err := finishCertSwap(dir); err != nil {
		return nil, err
	}
	p := pkiDir(dir)
	caPEM, err := os.ReadFile(filepath.Join(p, caCertFile))
	if err != nil {
		return nil, err
	}
	certPEM, err := os.ReadFile(filepath.Join(p, nodeCertFile))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(p, nodeKeyFile))
	if err != nil {
		return nil, err
	}
	out := &pki{}
	if err := out.setRoots(caPEM); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(p, caCertFile), err)
	}
	node, err := ca.LoadNodeCertChain(certPEM, keyPEM, out.rootCerts())
	if err != nil {
		return nil, err
	}
	out.node.Store(node)
	return out, nil
}

// splitPair splits a certificate (with the certificates issued with it,
// during a root rotation) and key written one after the other.
func splitPair(b []byte) (certPEM, keyPEM []byte, err error) {
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, errors.New("no certificate")
	}
	for {
		next, after := pem.Decode(rest)
		if next == nil || next.Type != "CERTIFICATE" {
			break
		}
		rest = after
	}
	certPEM = b[:len(b)-len(rest)]
	if k, _ := pem.Decode(rest); k == nil {
		return nil, nil, errors.New("no key")
	}
	return certPEM, rest, nil
}
