package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// newLeaderStore starts a single-manager store on loopback TCP and waits
// until it leads.
func newLeaderStore(t *testing.T, edit func(*Config)) *Store {
	t.Helper()
	cfg := Config{ID: "m0", DataDir: t.TempDir(), BindAddr: "127.0.0.1:0", Bootstrap: true,
		Logger: slog.New(slog.DiscardHandler),
		Raft: RaftTuning{HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
			LeaderLeaseTimeout: 50 * time.Millisecond, CommitTimeout: 5 * time.Millisecond}}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	waitFor(t, "leadership", s.IsLeader)
	return s
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
}

// holdCommitter takes every in-flight slot of s's committer, so that
// proposals queue; each call of the function it returns frees one, and the
// committer then takes everything queued as one group.
func holdCommitter(t *testing.T, s *Store) (queued func() int, release func()) {
	t.Helper()
	n, err := s.get()
	if err != nil {
		t.Fatal(err)
	}
	c := n.commit
	for range cap(c.slots) {
		c.slots <- struct{}{}
	}
	queued = func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.queue)
	}
	return queued, func() { <-c.slots }
}

type result struct {
	name  string
	index uint64
	err   error
}

// TestGroupCommitMembersFailAlone: concurrent transactions queued together
// commit as one entry; the one that lost an update race and the one whose
// name is taken fail with their own errors, and the others commit.
func TestGroupCommitMembersFailAlone(t *testing.T) {
	s := newLeaderStore(t, nil)
	ctx := context.Background()
	base := &api.Config{Spec: api.ConfigSpec{Name: "base", Data: []byte("0")}}
	if _, err := s.Update(ctx, func(tx Tx) error { return tx.Create(base) }); err != nil {
		t.Fatal(err)
	}
	queued, release := holdCommitter(t, s)

	type write struct {
		name string
		fn   func(Tx) error
	}
	var writes []write
	for i := range 6 {
		name := fmt.Sprintf("c%d", i)
		writes = append(writes, write{name, func(tx Tx) error {
			return tx.Create(&api.Config{Spec: api.ConfigSpec{Name: name}})
		}})
	}
	for _, data := range []string{"a", "b"} { // both read version base.Version: one must lose
		writes = append(writes, write{"update-" + data, func(tx Tx) error {
			c := *base
			c.Spec.Data = []byte(data)
			return tx.Update(&c)
		}})
	}
	writes = append(writes, write{"taken", func(tx Tx) error {
		return tx.Create(&api.Config{Spec: api.ConfigSpec{Name: "base"}})
	}})

	results := make(chan result, len(writes))
	var wg sync.WaitGroup
	for _, w := range writes {
		wg.Go(func() {
			idx, err := s.Update(ctx, w.fn)
			results <- result{w.name, idx, err}
		})
	}
	waitFor(t, "all writes queued", func() bool { return queued() == len(writes) })
	release()
	wg.Wait()
	close(results)

	indexes := map[uint64]bool{}
	updates := map[string]error{}
	for r := range results {
		switch {
		case strings.HasPrefix(r.name, "update-"):
			updates[r.name] = r.err
		case r.name == "taken":
			if !errors.Is(r.err, ErrNameConflict) {
				t.Errorf("create of a taken name: err = %v, want ErrNameConflict", r.err)
			}
			continue
		case r.err != nil:
			t.Errorf("%s: %v", r.name, r.err)
		}
		if r.err == nil {
			indexes[r.index] = true
		}
	}
	if (updates["update-a"] == nil) == (updates["update-b"] == nil) {
		t.Errorf("racing updates: a = %v, b = %v; want exactly one version conflict", updates["update-a"], updates["update-b"])
	}
	for name, err := range updates {
		if err != nil && !errors.Is(err, ErrVersionConflict) {
			t.Errorf("%s: err = %v, want ErrVersionConflict", name, err)
		}
	}
	if len(indexes) != 1 {
		t.Fatalf("the writes committed at indexes %v, want one group", indexes)
	}
	var idx uint64
	for i := range indexes {
		idx = i
	}
	err := s.View(func(tx ReadTx) error {
		cs, err := Find[api.Config](tx, All())
		if err != nil {
			return err
		}
		if len(cs) != 7 {
			t.Errorf("%d configs, want base and c0..c5", len(cs))
		}
		for _, c := range cs {
			if c.Spec.Name != "base" && c.Version != idx {
				t.Errorf("%s at version %d, want the group's index %d", c.Spec.Name, c.Version, idx)
			}
			if c.Spec.Name == "base" && (c.Version != idx || string(c.Spec.Data) == "0") {
				t.Errorf("base = %q at version %d: the winning update did not apply at %d", c.Spec.Data, c.Version, idx)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGroupCommitAbandoned: a proposal whose context ends while it waits in
// the queue is never proposed, and says so (not ErrUncertain).
func TestGroupCommitAbandoned(t *testing.T) {
	s := newLeaderStore(t, nil)
	queued, release := holdCommitter(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := s.Update(ctx, func(tx Tx) error {
			return tx.Create(&api.Config{Spec: api.ConfigSpec{Name: "abandoned"}})
		})
		errc <- err
	}()
	waitFor(t, "write queued", func() bool { return queued() == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) || errors.Is(err, ErrUncertain) {
		t.Fatalf("err = %v, want context.Canceled and not ErrUncertain", err)
	}
	release()
	if _, err := s.Update(context.Background(), func(tx Tx) error {
		return tx.Create(&api.Config{Spec: api.ConfigSpec{Name: "after"}})
	}); err != nil {
		t.Fatal(err)
	}
	err := s.View(func(tx ReadTx) error {
		cs, err := Find[api.Config](tx, ByName("abandoned"))
		if len(cs) != 0 {
			t.Errorf("the abandoned write was applied")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGroupCommitBounded: a group never exceeds Config.MaxEntryBytes; what
// does not fit goes into the next group.
func TestGroupCommitBounded(t *testing.T) {
	const maxEntry, writes = 4096, 12
	s := newLeaderStore(t, func(c *Config) { c.MaxEntryBytes = maxEntry })
	queued, release := holdCommitter(t, s)
	results := make(chan result, writes)
	var wg sync.WaitGroup
	for i := range writes {
		wg.Go(func() {
			idx, err := s.Update(context.Background(), func(tx Tx) error {
				return tx.Create(&api.Config{Spec: api.ConfigSpec{Name: fmt.Sprintf("c%02d", i), Data: noise(1000)}})
			})
			results <- result{index: idx, err: err}
		})
	}
	waitFor(t, "all writes queued", func() bool { return queued() == writes })
	release()
	wg.Wait()
	close(results)
	perIndex := map[uint64]int{}
	for r := range results {
		if r.err != nil {
			t.Fatal(r.err)
		}
		perIndex[r.index]++
	}
	// Each write is ~1.4 KB (the data as base64 JSON): at most 2 fit in 4 KiB.
	for idx, n := range perIndex {
		if n > 2 {
			t.Errorf("index %d holds %d writes of ~1.4 KB: group over %d bytes", idx, n, maxEntry)
		}
	}
	if len(perIndex) < writes/2 {
		t.Errorf("%d entries for %d writes", len(perIndex), writes)
	}
}
