package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/server"
	"github.com/gitorc/gitorc/cluster/store"
)

// Autolock, as Swarm's: a manager's data key (what opens its replica of
// the store) is sealed on disk by the cluster's unlock key, which only
// the operator holds outside the cluster. A restarted manager starts
// locked: it serves only gitorc unlock (and says it is locked to any
// other call) until it is given the key; its node's tasks keep running.
//
// The unlock key is a cluster key in the store (keyUnlock, sealed there by
// the data key like every internal secret). Each manager follows it
// (followUnlockKey): a rotation, autolock turned on or off, seals its key
// file anew; a joining or promoted manager gets it with the data key and
// never writes its key in clear.

// keyUnlock is the cluster key holding the unlock key, present when the
// cluster is autolocked.
const keyUnlock = "gitorc-internal-unlock-key"

// errLockedManager answers every call but unlock on a locked manager.
var errLockedManager = errors.New("this manager is locked (autolock): give it its unlock key with gitorc unlock")

// unlockKeyOf parses the unlock key a manager sent with the data key;
// nil when the cluster is not autolocked.
func unlockKeyOf(b []byte) (*store.UnlockKey, error) {
	if len(b) == 0 {
		return nil, nil
	}
	k, err := store.ParseUnlockKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("the cluster's unlock key: %w", err)
	}
	return k, nil
}

// waitUnlocked serves the control socket of a locked manager until
// gitorc unlock opens its store, or ctx ends.
func (d *daemon) waitUnlocked(ctx context.Context, s *store.Store) error {
	d.log.Warn("this manager is locked (autolock): run gitorc unlock on it")
	unlocked := make(chan struct{})
	unlock := func(_ context.Context, key string) (controlapi.UnlockReport, error) {
		k, err := store.ParseUnlockKey(key)
		if err != nil {
			return controlapi.UnlockReport{}, server.Errorf(http.StatusBadRequest, "%v: want the key gitorc bootstrap --autolock or gitorc unlock-key printed", err)
		}
		if err := s.Unlock(k); err != nil {
			if errors.Is(err, store.ErrBadUnlockKey) {
				return controlapi.UnlockReport{}, server.Errorf(http.StatusBadRequest, "the unlock key is wrong: this manager stays locked (after a rotation, a manager that was down needs the key it was locked with)")
			}
			return controlapi.UnlockReport{}, server.WithStatus(http.StatusInternalServerError, err)
		}
		d.log.Info("manager unlocked")
		return controlapi.UnlockReport{Unlocked: true, Node: d.state.ID}, nil
	}
	mux := server.LockedHandler(unlock, func(controlapi.UnlockReport) {
		select {
		case <-unlocked:
		default:
			close(unlocked)
		}
	}, errLockedManager)
	path := socketFile(d.dir)
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- serveSocket(sctx, ln, mux, path) }()
	select {
	case <-ctx.Done():
	case <-unlocked:
	}
	stop()
	err = <-served // the socket is free for the manager's own
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// followUnlockKey keeps this manager's key file sealed by the cluster's
// unlock key, as it changes (autolock on, off, rotated), until ctx ends.
func (d *daemon) followUnlockKey(ctx context.Context) error {
	applied, known := "", false
	apply := func() {
		b, err := d.clusterKey(keyUnlock)
		switch {
		case errors.Is(err, errNoClusterKey):
			if _, err := os.Stat(filepath.Join(pkiDir(d.dir), unlockSealed)); err == nil {
				return // bootstrap's key, not in the store yet: it stays as it is
			}
			b = nil
		case err != nil:
			return
		}
		if known && string(b) == applied {
			return
		}
		k, err := unlockKeyOf(b)
		if err != nil {
			d.log.Warn("autolock", "err", err)
			return
		}
		if err := d.store.SetUnlockKey(k); err != nil {
			d.log.Warn("autolock: seal the data key", "err", err)
			return
		}
		if known || k != nil {
			d.log.Info("autolock: data key sealed anew", "autolock", k != nil)
		}
		applied, known = string(b), true
	}
	for ctx.Err() == nil {
		w, err := d.store.Watch(store.KindSecret)
		if err != nil {
			return nil // the store closed
		}
		apply()
		for range eventsUntil(ctx, w) {
			apply()
		}
		w.Close()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second): // the watch fell behind: watch again
		}
	}
	return nil
}

// UnlockKey is GET /v1/unlock-key: the cluster's unlock key, if
// autolock is on.
func (n nodeAPI) UnlockKey(context.Context) (controlapi.UnlockKeyReport, error) {
	b, err := n.d.clusterKey(keyUnlock)
	if errors.Is(err, errNoClusterKey) {
		return controlapi.UnlockKeyReport{}, nil
	}
	if err != nil {
		return controlapi.UnlockKeyReport{}, unavailable(err)
	}
	return controlapi.UnlockKeyReport{Autolock: true, Key: string(b)}, nil
}

// RotateUnlockKey is POST /v1/unlock-key/rotate: a new key, while
// autolock is on.
func (n nodeAPI) RotateUnlockKey(ctx context.Context) (controlapi.UnlockKeyReport, error) {
	rep, err := n.UnlockKey(ctx)
	if err != nil {
		return rep, err
	}
	if !rep.Autolock {
		return rep, server.WithStatus(http.StatusConflict, errors.New("autolock is off: turn it on with gitorc cluster update --autolock=true"))
	}
	return n.setUnlockKey(ctx, true)
}

// SetAutolock is POST /v1/autolock: on makes a key, off deletes it.
func (n nodeAPI) SetAutolock(ctx context.Context, on bool) (controlapi.UnlockKeyReport, error) {
	rep, err := n.UnlockKey(ctx)
	if err != nil {
		return rep, err
	}
	if rep.Autolock == on {
		return controlapi.UnlockKeyReport{Autolock: rep.Autolock}, nil
	}
	return n.setUnlockKey(ctx, on)
}

// setUnlockKey stores a new unlock key (on), or deletes it.
func (n nodeAPI) setUnlockKey(ctx context.Context, on bool) (controlapi.UnlockKeyReport, error) {
	if !on {
		if err := n.d.deleteClusterKey(ctx, keyUnlock); err != nil {
			return controlapi.UnlockKeyReport{}, unavailable(err)
		}
		return controlapi.UnlockKeyReport{}, nil
	}
	k, err := store.NewUnlockKey()
	if err != nil {
		return controlapi.UnlockKeyReport{}, server.WithStatus(http.StatusInternalServerError, err)
	}
	if err := n.d.setClusterKey(ctx, keyUnlock, []byte(k.Encode())); err != nil {
		return controlapi.UnlockKeyReport{}, unavailable(err)
	}
	return controlapi.UnlockKeyReport{Autolock: true, Key: k.Encode()}, nil
}

// deleteClusterKey removes an internal secret, if it is there.
func (d *daemon) deleteClusterKey(ctx context.Context, name string) error {
	_, err := d.store.Update(ctx, func(tx store.Tx) error {
		s, err := findSecret(tx, name)
		if err != nil || s == nil {
			return err
		}
		return tx.Delete(store.KindSecret, s.ID, s.Version)
	})
	if err != nil {
		return fmt.Errorf("remove the cluster's %s: %w", name, err)
	}
	return nil
}
