package main

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/store"
	"golang.org/x/crypto/nacl/secretbox"
)

// nodeState is what a node keeps in its data dir to restart without flags.
type nodeState struct {
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
}

// Files of a data dir.
func stateFile(dir string) string     { return filepath.Join(dir, "node.json") }
func pkiDir(dir string) string        { return filepath.Join(dir, "pki") }
func raftDir(dir string) string       { return filepath.Join(dir, "raft") }
func socketFile(dir string) string    { return filepath.Join(dir, "gitorc.sock") }
func recipientPath(dir string) string { return filepath.Join(dir, "recipient.txt") }

func loadState(dir string) (*nodeState, error) {
	b, err := os.ReadFile(stateFile(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s holds no gitorc node: run gitorc bootstrap (a new cluster) or gitorc join (an existing one)", dir)
	}
	if err != nil {
		return nil, err
	}
	var s nodeState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", stateFile(dir), err)
	}
	return &s, nil
}

func saveState(dir string, s *nodeState) error {
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
	caKeySealed  = "ca-key.sealed"
	tokensSealed = "tokens.sealed"
	identSealed  = "identity.sealed"
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

// pki is a node's certificates.
type pki struct {
	caCert []byte
	node   *ca.NodeCert
}

func loadPKI(dir string) (*pki, error) {
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
	root, err := ca.ParseCertificatePEM(caPEM)
	if err != nil {
		return nil, err
	}
	node, err := ca.LoadNodeCert(certPEM, keyPEM, root)
	if err != nil {
		return nil, err
	}
	return &pki{caCert: caPEM, node: node}, nil
}
