package storetest_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

func TestWatchDeliversCommittedChanges(t *testing.T) {
	c := storetest.New(t, storetest.Options{})
	l := c.Leader()
	f := (l + 1) % 3
	var before int
	w, err := c.Store(f).ViewAndWatch(func(tx store.ReadTx) error {
		cs, err := store.Find[api.Config](tx, store.All())
		before = len(cs)
		return err
	}, store.KindConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := ctxT(t, waitLong)
	cfg, err := createConfig(ctx, c.Store(l), "a", "1")
	if err != nil {
		t.Fatal(err)
	}
	// A change of another kind is filtered out.
	if _, err := c.Store(l).Update(ctx, func(tx store.Tx) error {
		return tx.Create(&api.Volume{Spec: api.VolumeSpec{Name: "v"}})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store(l).Update(ctx, func(tx store.Tx) error { return tx.Delete(store.KindConfig, cfg.ID, cfg.Version) }); err != nil {
		t.Fatal(err)
	}
	var got []string
	timeout := time.After(waitLong)
	for len(got) < 2 {
		select {
		case e := <-w.Events():
			obj, err := e.Object()
			if err != nil {
				t.Fatal(err)
			}
			if e.Kind != store.KindConfig || obj.(*api.Config).Spec.Name != "a" {
				t.Fatalf("unexpected event %+v", e)
			}
			if e.Action == store.ActionCreate && e.Index != cfg.Version {
				t.Errorf("create event index %d, want the version %d", e.Index, cfg.Version)
			}
			got = append(got, fmt.Sprintf("%s %s", e.Action, e.Kind))
		case <-timeout:
			t.Fatalf("events so far: %v", got)
		}
	}
	if before != 0 || got[0] != "create config" || got[1] != "delete config" {
		t.Fatalf("before=%d events=%v", before, got)
	}
}

func TestSlowWatcherIsDroppedNotBlocking(t *testing.T) {
	c := storetest.New(t, storetest.Options{WatchBuffer: 4})
	l := c.Leader()
	w, err := c.Store(l).Watch()
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, waitLong)
	// Nobody reads w: ten commits must still go through.
	for i := range 10 {
		if _, err := createConfig(ctx, c.Store(l), fmt.Sprintf("c%d", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for range w.Events() {
		n++
	}
	if n != 4 || !errors.Is(w.Err(), store.ErrWatchOverflow) {
		t.Fatalf("drained %d events, err %v; want 4 and ErrWatchOverflow", n, w.Err())
	}
	// Resync: the state plus a fresh watcher that misses nothing.
	var have int
	w2, err := c.Store(l).ViewAndWatch(func(tx store.ReadTx) error {
		cs, err := store.Find[api.Config](tx, store.All())
		have = len(cs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if have != 10 {
		t.Fatalf("resync view has %d configs", have)
	}
	if _, err := createConfig(ctx, c.Store(l), "c10", ""); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-w2.Events():
		if e.Action != store.ActionCreate {
			t.Fatalf("event %+v", e)
		}
	case <-time.After(waitLong):
		t.Fatal("no event after resync")
	}
}

func TestLargeTransactionIsChunkedAndAtomic(t *testing.T) {
	c := storetest.New(t, storetest.Options{MaxEntryBytes: 4096})
	l := c.Leader()
	f := (l + 1) % 3
	ctx := ctxT(t, waitLong)
	mk := func(tx store.Tx, prefix string, n int) error {
		for i := range n {
			cfg := &api.Config{Spec: api.ConfigSpec{Name: fmt.Sprintf("%s-%03d", prefix, i), Data: make([]byte, 200)}}
			if err := tx.Create(cfg); err != nil {
				return err
			}
		}
		return nil
	}
	// ~60 KiB through a follower: forwarded whole, split by the leader.
	if _, err := c.Store(f).Update(ctx, func(tx store.Tx) error { return mk(tx, "big", 200) }); err != nil {
		t.Fatal(err)
	}
	mustConverge(t, c)
	for i := range 3 {
		if n := len(configNames(t, c.Store(i))); n != 200 {
			t.Fatalf("manager %d has %d configs, want 200", i, n)
		}
	}
	// A large transaction that conflicts at the end applies nothing.
	_, err := c.Store(l).Update(ctx, func(tx store.Tx) error {
		if err := mk(tx, "more", 100); err != nil {
			return err
		}
		return tx.Create(&api.Config{Spec: api.ConfigSpec{Name: "big-000"}})
	})
	if !errors.Is(err, store.ErrNameConflict) {
		t.Fatalf("err = %v, want name conflict", err)
	}
	if n := len(configNames(t, c.Store(l))); n != 200 {
		t.Fatalf("a failed chunked transaction left %d configs, want 200", n)
	}
}
