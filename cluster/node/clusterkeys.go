package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/secrets"
)

// The cluster's own secrets — the CA key, the join tokens and the age
// identity — live in the store as internal secrets: replicated to every
// manager, encrypted at rest with the data key (and locked with it under
// autolock), and never delivered to a task (api.LabelInternal). So any
// manager can admit nodes and open sealed stack secrets, and a rotated
// token stops working on all of them at once.
//
// Bootstrap seals them into files first (the store has no leader yet);
// once this manager leads, importClusterKeys moves them into the store and
// removes the files, so a bootstrap cut short loses nothing.
const (
	keyCA       = "gitorc-internal-ca-key"
	keyTokens   = "gitorc-internal-join-tokens"
	keyIdentity = "gitorc-internal-age-identity"
)

// pendingKeys maps each internal secret to the sealed file bootstrap left.
var pendingKeys = map[string]string{keyCA: caKeySealed, keyTokens: tokensSealed, keyIdentity: identSealed,
	keyWebhookSecret: hookSealed, keyUnlock: unlockSealed, keyGitCredentials: gitCredSealed}

// errNoClusterKey: the store does not hold that secret (yet).
var errNoClusterKey = errors.New("not in the store yet")

// clusterKey reads an internal secret from this manager's replica.
func (d *daemon) clusterKey(name string) ([]byte, error) {
	var out []byte
	err := d.store.View(func(tx store.ReadTx) error {
		s, err := findSecret(tx, name)
		if err != nil {
			return err
		}
		if s == nil {
			return fmt.Errorf("the cluster's %s: %w", name, errNoClusterKey)
		}
		out = []byte(s.Spec.Data.Reveal())
		return nil
	})
	return out, err
}

// setClusterKey creates or replaces an internal secret.
func (d *daemon) setClusterKey(ctx context.Context, name string, data []byte) error {
	_, err := d.store.Update(ctx, func(tx store.Tx) error {
		s, err := findSecret(tx, name)
		if err != nil {
			return err
		}
		if s == nil {
			return tx.Create(&api.Secret{Spec: api.SecretSpec{Name: name,
				Labels: map[string]string{api.LabelInternal: "true"}, Data: api.SecretBytes(data)}})
		}
		s.Spec.Data = api.SecretBytes(data)
		return tx.Update(s)
	})
	if err != nil {
		return fmt.Errorf("store the cluster's %s: %w", name, err)
	}
	return nil
}

func findSecret(tx store.ReadTx, name string) (*api.Secret, error) {
	found, err := store.Find[api.Secret](tx, store.ByName(name))
	if err != nil || len(found) == 0 {
		return nil, err
	}
	return found[0], nil
}

// importClusterKeys moves the keys bootstrap sealed into files into the
// store, once this manager leads. Nothing to do on other managers.
func (d *daemon) importClusterKeys(ctx context.Context) error {
	key, err := d.store.ExportDataKey()
	if err != nil {
		return err
	}
	pending := map[string][]byte{}
	for name, file := range pendingKeys {
		b, err := openFile(key, filepath.Join(pkiDir(d.dir), file))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		pending[name] = b
	}
	if len(pending) == 0 {
		return nil
	}
	changes, stop := d.store.WatchLeader()
	defer stop()
	for !d.store.IsLeader() {
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
		}
	}
	// All in one transaction: a manager that can hand out tokens can also
	// issue the certificates they admit. A key already in the store wins:
	// the files are a copy of it left by an import cut short.
	_, err = d.store.Update(ctx, func(tx store.Tx) error {
		for _, name := range slices.Sorted(maps.Keys(pending)) {
			s, err := findSecret(tx, name)
			if err != nil {
				return err
			}
			if s == nil {
				if err := tx.Create(&api.Secret{Spec: api.SecretSpec{Name: name,
					Labels: map[string]string{api.LabelInternal: "true"}, Data: api.SecretBytes(pending[name])}}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store the cluster's keys: %w", err)
	}
	for name := range pending {
		if err := os.Remove(filepath.Join(pkiDir(d.dir), pendingKeys[name])); err != nil {
			return err
		}
	}
	d.log.Info("cluster keys stored in the replicated store")
	return nil
}

// ageIdentity is the cluster's age identity, waiting (within ctx) until
// the store holds it. It is read once and kept.
type ageIdentity struct {
	mu sync.Mutex
	id *secrets.Identity
}

func (d *daemon) identity(ctx context.Context) (*secrets.Identity, error) {
	d.ident.mu.Lock()
	defer d.ident.mu.Unlock()
	if d.ident.id != nil {
		return d.ident.id, nil
	}
	for {
		b, err := d.clusterKey(keyIdentity)
		if err == nil {
			id, err := secrets.ParseIdentity(api.SecretBytes(b))
			if err != nil {
				return nil, err
			}
			d.ident.id = id
			// The public recipient, for gitorc seal on this host.
			if err := writeFileAtomic(recipientPath(d.dir), []byte(id.Recipient()+"\n"), 0o644); err != nil {
				d.log.Warn("write the recipient file", "err", err)
			}
			return id, nil
		}
		if !errors.Is(err, errNoClusterKey) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the cluster's age identity: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
