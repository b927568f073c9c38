package storetest_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/google/go-cmp/cmp"
)

// dump reads every object of every kind from s's local state.
func dump(t testing.TB, s *store.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := s.View(func(tx store.ReadTx) error {
		for _, k := range store.Kinds() {
			objs, err := tx.Find(k, store.All())
			if err != nil {
				return err
			}
			for _, o := range objs {
				m := o.GetMeta()
				extra := ""
				if sec, ok := o.(*api.Secret); ok {
					extra = string(sec.Spec.Data.Reveal())
				}
				out[k.String()+"/"+m.ID] = fmt.Sprintf("v%d|%s|%s|%s", m.Version,
					m.CreatedAt.Format(time.RFC3339Nano), m.UpdatedAt.Format(time.RFC3339Nano), extra)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRestartAfterCompaction(t *testing.T) {
	tune := storetest.TestTuning()
	tune.TrailingLogs = 4 // compaction keeps only a few entries behind a snapshot
	c := storetest.New(t, storetest.Options{Raft: tune})
	for _, n := range names(20, "a") {
		createRetry(t, c, n, n)
	}
	mustConverge(t, c)
	for i := range 3 {
		if err := c.Store(i).Snapshot(); err != nil {
			t.Fatalf("snapshot %d: %v", i, err)
		}
	}
	lagging := (c.Leader() + 1) % 3
	c.Kill(lagging)
	for _, n := range names(20, "b") {
		createRetry(t, c, n, n)
	}
	l := c.Leader()
	// The leader compacts past the killed follower's position: it must
	// catch up from an installed snapshot, not the log.
	if err := c.Store(l).Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(lagging); err != nil {
		t.Fatal(err)
	}
	mustConverge(t, c)
	want := dump(t, c.Store(l))
	if len(want) != 40 {
		t.Fatalf("leader holds %d objects, want 40", len(want))
	}
	if diff := cmp.Diff(want, dump(t, c.Store(lagging))); diff != "" {
		t.Fatalf("lagging manager after snapshot install (-want +got):\n%s", diff)
	}
	// A few more writes after the snapshot, then a full-cluster restart:
	// every manager recovers from its own snapshot plus the log after it.
	for _, n := range names(5, "c") {
		createRetry(t, c, n, n)
	}
	mustConverge(t, c)
	want = dump(t, c.Store(c.Leader()))
	for i := range 3 {
		c.Kill(i)
	}
	for i := range 3 {
		if err := c.Restart(i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.WaitLeader(waitLong); err != nil {
		t.Fatal(err)
	}
	mustConverge(t, c)
	for i := range 3 {
		if diff := cmp.Diff(want, dump(t, c.Store(i))); diff != "" {
			t.Errorf("manager %d after full restart (-want +got):\n%s", i, diff)
		}
	}
}

// Nothing of the store is in clear on disk: secrets, configs, names (the
// Raft log and the snapshots are sealed by the data key).
func TestNoPlaintextOnDisk(t *testing.T) {
	c := storetest.New(t, storetest.Options{})
	secret := []byte("hunter2-very-secret-payload-7f3a9c")
	control := []byte("plain-config-payload-control-1b2d")
	ctx := ctxT(t, waitLong)
	l := c.Leader()
	sec := &api.Secret{Spec: api.SecretSpec{Name: "db-password", Data: secret}}
	_, err := c.Store((l+1)%3).Update(ctx, func(tx store.Tx) error { // forwarded, too
		if err := tx.Create(sec); err != nil {
			return err
		}
		return tx.Create(&api.Config{Spec: api.ConfigSpec{Name: "control", Data: control}})
	})
	if err != nil {
		t.Fatal(err)
	}
	mustConverge(t, c)
	for i := range 3 {
		err := c.Store(i).View(func(tx store.ReadTx) error {
			got, err := store.Get[api.Secret](tx, sec.ID)
			if err != nil {
				return err
			}
			if !bytes.Equal(got.Spec.Data.Reveal(), secret) {
				t.Errorf("manager %d reads secret %q", i, got.Spec.Data.Reveal())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Store(i).Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	// Label-only update keeps the payload.
	sec.Spec.Data = nil
	sec.Spec.Labels = map[string]string{"rotated": "no"}
	if _, err := c.Store(l).Update(ctx, func(tx store.Tx) error { return tx.Update(sec) }); err != nil {
		t.Fatal(err)
	}
	_ = c.Store(l).View(func(tx store.ReadTx) error {
		got, err := store.Get[api.Secret](tx, sec.ID)
		if err != nil || !bytes.Equal(got.Spec.Data.Reveal(), secret) {
			t.Errorf("payload lost by a label update: %v", err)
		}
		return nil
	})
	mustConverge(t, c)
	c.Close() // flush and release every file

	// Every payload is sealed at rest, not only secrets': a config's
	// content and a service's environment are on no disk either. The scan
	// reads the files that hold them (raft.db, snapshots).
	scanned := map[string]bool{}
	for i := range 3 {
		err := filepath.WalkDir(c.Dir(i), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if bytes.Contains(b, secret) {
				t.Errorf("secret plaintext found in %s", path)
			}
			if bytes.Contains(b, control) || bytes.Contains(b, []byte("cGxhaW4tY29uZmln")) || bytes.Contains(b, []byte("db-password")) {
				t.Errorf("a config's content or an object's name in clear in %s", path)
			}
			if len(b) > 0 {
				scanned[filepath.Base(path)] = true
				if d.Name() == "state.bin" {
					scanned["snapshot"] = true
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !scanned["raft.db"] || !scanned["snapshot"] {
		t.Errorf("the scan did not read the Raft log and a snapshot: %v", scanned)
	}
}

func TestAutolock(t *testing.T) {
	unlock, err := store.NewUnlockKey()
	if err != nil {
		t.Fatal(err)
	}
	c := storetest.New(t, storetest.Options{Configure: func(i int, cfg *store.Config) {
		if i == 2 {
			cfg.UnlockKey = unlock
		}
	}})
	createRetry(t, c, "one", "1")
	mustConverge(t, c)
	c.Kill(2)
	// Restart without the key: locked, and says how to unlock.
	if err := c.RestartWith(2, func(cfg *store.Config) { cfg.UnlockKey = nil }); err != nil {
		t.Fatal(err)
	}
	s := c.Store(2)
	err = s.View(func(store.ReadTx) error { return nil })
	if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "unlock") {
		t.Fatalf("locked manager: err = %v", err)
	}
	if _, err := createConfig(ctxT(t, time.Second), s, "x", "y"); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("locked manager accepted a write: %v", err)
	}
	wrong, _ := store.NewUnlockKey()
	if err := s.Unlock(wrong); !errors.Is(err, store.ErrBadUnlockKey) {
		t.Fatalf("wrong key: err = %v", err)
	}
	parsed, err := store.ParseUnlockKey(unlock.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unlock(parsed); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	createRetry(t, c, "two", "2")
	mustConverge(t, c)
	if got := configNames(t, s); len(got) != 2 {
		t.Errorf("unlocked manager has %v", got)
	}
	// The key file on disk does not hold the data key in the clear.
	b, err := os.ReadFile(filepath.Join(c.Dir(2), "datakey.json"))
	if err != nil || !strings.Contains(string(b), `"sealed":true`) {
		t.Errorf("key file not sealed: %s %v", b, err)
	}
}

func TestMembershipLearnerVoterRemove(t *testing.T) {
	c := storetest.New(t, storetest.Options{})
	createRetry(t, c, "before", "1")
	n, err := c.AddManager()
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, waitLong)
	l := c.Leader()
	if err := c.Store(l).AddLearner(ctx, c.ID(n), c.Addr(n)); err != nil {
		t.Fatal(err)
	}
	mustConverge(t, c)
	if got := configNames(t, c.Store(n)); got["before"] != "1" {
		t.Fatalf("learner did not replicate: %v", got)
	}
	ms, err := c.Store(l).Members()
	if err != nil {
		t.Fatal(err)
	}
	voters := map[string]bool{}
	for _, m := range ms {
		voters[m.ID] = m.Voter
	}
	if v, ok := voters[c.ID(n)]; !ok || v {
		t.Fatalf("members %+v: want %s as learner", ms, c.ID(n))
	}
	// A follower refuses membership changes and names the leader.
	f := (l + 1) % 3
	if err := c.Store(f).AddVoter(ctx, c.ID(n), c.Addr(n)); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("follower AddVoter: err = %v", err)
	}
	if err := c.AddVoter(n); err != nil { // promote
		t.Fatal(err)
	}
	if err := c.Store(c.Leader()).RemoveMember(ctx, c.ID(f)); err != nil {
		t.Fatal(err)
	}
	c.Kill(f)
	ms, _ = c.Store(c.Leader()).Members()
	if len(ms) != 3 {
		t.Fatalf("members after remove: %+v", ms)
	}
	for _, m := range ms {
		if m.ID == c.ID(f) || !m.Voter {
			t.Errorf("unexpected member %+v", m)
		}
	}
	createRetry(t, c, "after", "2")
	mustConverge(t, c)
	if got := configNames(t, c.Store(n)); got["after"] != "2" {
		t.Fatalf("promoted voter did not replicate: %v", got)
	}
}
