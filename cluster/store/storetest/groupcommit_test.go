package storetest_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/google/go-cmp/cmp"
)

// TestConcurrentIncrementsNoLostUpdate: writers on every manager (the
// followers forward to the leader, whose committer groups concurrent
// transactions into shared entries) increment counters read-modify-write,
// retrying on version conflicts. Every counter ends at the number of
// increments that succeeded on it, so no stale write slipped into a group,
// and every manager holds the same objects at the same versions.
func TestConcurrentIncrementsNoLostUpdate(t *testing.T) {
	const keys, writersPerManager, incrementsPerWriter = 4, 8, 15
	c := storetest.New(t, storetest.Options{})
	ctx := ctxT(t, waitLong)
	ids := make([]string, keys)
	for i := range ids {
		cfg, err := createConfig(ctx, c.Store(c.Leader()), fmt.Sprintf("k%d", i), "0")
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = cfg.ID
	}
	mustConverge(t, c)

	var mu sync.Mutex
	done := make([]int, keys)
	indexes := map[uint64]int{}
	var wg sync.WaitGroup
	for m := range c.Size() {
		s := c.Store(m)
		for w := range writersPerManager {
			wg.Go(func() {
				for n := range incrementsPerWriter {
					k := (m*writersPerManager + w + n) % keys
					var idx uint64
					err := store.RetryConflicts(1000, func() error {
						var err error
						idx, err = s.Update(ctx, func(tx store.Tx) error {
							cfg, err := store.Get[api.Config](tx, ids[k])
							if err != nil {
								return err
							}
							v, err := strconv.Atoi(string(cfg.Spec.Data))
							if err != nil {
								return err
							}
							cfg.Spec.Data = []byte(strconv.Itoa(v + 1))
							return tx.Update(cfg)
						})
						return err
					})
					if err != nil {
						t.Errorf("manager %d writer %d: %v", m, w, err)
						return
					}
					mu.Lock()
					done[k]++
					indexes[idx]++
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	mustConverge(t, c)
	shared := 0
	for _, n := range indexes {
		if n > 1 {
			shared += n
		}
	}
	t.Logf("%d increments in %d entries (%d in entries shared with others)", incrementsPerWriter*writersPerManager*c.Size(), len(indexes), shared)

	dump := func(s *store.Store) []*api.Config {
		var out []*api.Config
		if err := s.View(func(tx store.ReadTx) error {
			var err error
			out, err = store.Find[api.Config](tx, store.All())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := dump(c.Store(c.Leader()))
	for _, cfg := range want {
		var k int
		fmt.Sscanf(cfg.Spec.Name, "k%d", &k)
		if got := string(cfg.Spec.Data); got != strconv.Itoa(done[k]) {
			t.Errorf("%s = %s after %d successful increments", cfg.Spec.Name, got, done[k])
		}
	}
	for _, i := range c.Live() {
		if diff := cmp.Diff(want, dump(c.Store(i))); diff != "" {
			t.Errorf("manager %d differs from the leader (-leader +manager %d):\n%s", i, i, diff)
		}
	}
}
