package node

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// keyFileSealed reports whether a manager's data key file is sealed.
func keyFileSealed(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(raftDir(dir), "datakey.json"))
	if err != nil {
		t.Fatal(err)
	}
	var kf struct {
		Sealed bool `json:"sealed"`
	}
	if err := json.Unmarshal(b, &kf); err != nil {
		t.Fatal(err)
	}
	return kf.Sealed
}

// filesHolding lists the files under dir that hold key, raw or base64.
func filesHolding(t *testing.T, dir string, key *store.DataKey) []string {
	t.Helper()
	forms := [][]byte{key[:], []byte(base64.StdEncoding.EncodeToString(key[:])), []byte(base64.RawURLEncoding.EncodeToString(key[:]))}
	var out []string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		for _, f := range forms {
			if bytes.Contains(b, f) {
				out = append(out, path)
				break
			}
		}
		return nil
	})
	return out
}

// unlockWith gives dir's locked manager key through its control socket,
// as gitorc unlock does; a manager that unlocks answers so, naming
// itself.
func unlockWith(t *testing.T, dir, key string) error {
	t.Helper()
	rep, err := client.Unix(socketFile(dir)).Unlock(context.Background(), key)
	if err == nil && (!rep.Unlocked || rep.Node == "") {
		t.Errorf("unlock answered %+v", rep)
	}
	return err
}

// waitLocked waits until dir's manager answers that it is locked.
func waitLocked(t *testing.T, dir string) {
	t.Helper()
	var err error
	if werr := storetest.WaitFor(func() bool {
		_, err = client.Unix(socketFile(dir)).SyncStatus(context.Background())
		return err != nil && strings.Contains(err.Error(), "this manager is locked (autolock)")
	}, 30*time.Second); werr != nil {
		t.Fatalf("the restarted manager does not say it is locked: %v", err)
	}
}

// errHas reports whether err is an error whose message holds want.
func errHas(err error, want string) bool { return err != nil && strings.Contains(err.Error(), want) }

// Autolock: bootstrap --autolock seals the data key by a key only the
// operator gets; a restarted manager waits locked (and says so) until
// gitorc unlock gives it that key, refusing a wrong one; a manager that
// joins seals its key from the start; a rotation re-seals every running
// manager's key, so that only the new key unlocks them; autolock off
// unseals it.
func TestAutolock(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	f := managerFlags(t, filepath.Join(tmp, "m1"))
	f.autolock = true
	m1, stop1, token := firstManager(t, f)
	c1 := managerClient(m1)
	var rep controlapi.UnlockKeyReport
	if err := storetest.WaitFor(func() bool {
		var err error
		rep, err = c1.UnlockKey(ctx)
		return err == nil && rep.Autolock
	}, 30*time.Second); err != nil {
		t.Fatalf("the unlock key never reached the store: %+v", rep)
	}
	first := rep.Key
	dk, err := m1.store.ExportDataKey()
	if err != nil {
		t.Fatal(err)
	}
	if !keyFileSealed(t, m1.dir) {
		t.Error("bootstrap --autolock left the data key unsealed")
	}

	// A manager that joins gets the key and never writes its data key in
	// clear.
	m2, err := testJoin(ctx, managerFlags(t, filepath.Join(tmp, "m2")), token, m1.state.Advertise)
	if err != nil {
		t.Fatal(err)
	}
	stopFirst2 := startNode(t, m2, "m2")
	if !keyFileSealed(t, m2.dir) {
		t.Error("the joined manager's data key is not sealed")
	}

	// Restarted, m2 is locked: its files hold nothing that opens the
	// store; a wrong key is refused, the right one unlocks it.
	if err := storetest.WaitFor(func() bool { return voters(m1) == 2 }, 60*time.Second); err != nil {
		t.Fatalf("voters = %d, want 2", voters(m1))
	}
	stopFirst2()
	for _, dir := range []string{m1.dir, m2.dir} {
		if files := filesHolding(t, dir, dk); len(files) > 0 {
			t.Errorf("the data key is in clear in %v", files)
		}
	}
	m2again, stop2 := restarted(t, m2.dir, "m2 again")
	waitLocked(t, m2.dir)
	other, _ := store.NewUnlockKey()
	if err := unlockWith(t, m2.dir, other.Encode()); !errHas(err, "the unlock key is wrong") {
		t.Errorf("a wrong key: %v", err)
	}
	if err := unlockWith(t, m2.dir, "not-a-key"); !errHas(err, "must start with") {
		t.Errorf("a malformed key: %v", err)
	}
	if err := unlockWith(t, m2.dir, first); err != nil {
		t.Fatalf("the right key: %v", err)
	}
	var m2rep controlapi.UnlockKeyReport
	if err := storetest.WaitFor(func() bool {
		var err error
		m2rep, err = client.Unix(socketFile(m2.dir)).UnlockKey(ctx)
		return err == nil && m2rep.Autolock
	}, 30*time.Second); err != nil {
		t.Fatalf("the unlocked manager does not serve its API: %+v", m2rep)
	}

	// Rotation: every running manager seals its key with the new one.
	rotated, err := c1.RotateUnlockKey(ctx)
	second := rotated.Key
	if err != nil || !rotated.Autolock || !strings.HasPrefix(second, "GTRC-UNLOCK-1-") || second == first {
		t.Fatalf("rotate: %+v, %v", rotated, err)
	}
	waitSealedWith(t, m1, second)
	waitSealedWith(t, m2again, second)
	stop2()
	_, stop2 = restarted(t, m2.dir, "m2 third")
	waitLocked(t, m2.dir)
	if err := unlockWith(t, m2.dir, first); !errHas(err, "the unlock key is wrong") {
		t.Errorf("the rotated-away key unlocked m2: %v", err)
	}
	if err := unlockWith(t, m2.dir, second); err != nil {
		t.Fatalf("the new key: %v", err)
	}

	// Unlocked, m2 serves its API (from its replica, caught up).
	var shown controlapi.UnlockKeyReport
	var shownErr error
	if err := storetest.WaitFor(func() bool {
		shown, shownErr = client.Unix(socketFile(m2.dir)).UnlockKey(ctx)
		return shownErr == nil && shown.Autolock && shown.Key == second
	}, 30*time.Second); err != nil {
		t.Errorf("the unlock key on m2: %+v, %v", shown, shownErr)
	}
	// Autolock off (twice: the second finds it off already): the key
	// files are unsealed, a restart needs no key.
	for i := range 2 {
		if off, err := c1.SetAutolock(ctx, false); err != nil || off.Autolock || off.Key != "" {
			t.Fatalf("autolock off (%d): %+v, %v", i, off, err)
		}
	}
	if err := storetest.WaitFor(func() bool { return !keyFileSealed(t, m1.dir) }, 30*time.Second); err != nil {
		t.Fatal("autolock off left m1's key sealed")
	}
	stop1()
	m1again, _ := restarted(t, m1.dir, "m1 again")
	if err := storetest.WaitFor(func() bool { s := m1again.storeRef.Load(); return s != nil && !s.Locked() }, 30*time.Second); err != nil {
		t.Error("with autolock off, the restarted manager is locked")
	}
	_ = stop2
}

// waitSealedWith waits until d's key file opens with key only: a store
// opened in a copy of its raft dir unlocks with it.
func waitSealedWith(t *testing.T, d *daemon, key string) {
	t.Helper()
	k, err := store.ParseUnlockKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := storetest.WaitFor(func() bool {
		ok, err := store.KeyFileOpens(raftDir(d.dir), k)
		return err == nil && ok
	}, 30*time.Second); err != nil {
		t.Fatalf("%s's data key is not sealed by the rotated key", d.dir)
	}
}
