package storetest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

const waitLong = 15 * time.Second

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// createConfig creates a config object named name with data through s.
func createConfig(ctx context.Context, s *store.Store, name, data string) (*api.Config, error) {
	cfg := &api.Config{Spec: api.ConfigSpec{Name: name, Data: []byte(data)}}
	_, err := s.Update(ctx, func(tx store.Tx) error { return tx.Create(cfg) })
	return cfg, err
}

// createRetry retries createConfig on other managers until it commits,
// for tests that write across faults.
func createRetry(t testing.TB, c *storetest.Cluster, name, data string) *api.Config {
	t.Helper()
	var cfg *api.Config
	err := c.WaitFor(func() bool {
		for _, i := range c.Live() {
			s := c.Store(i)
			if s == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			got, err := createConfig(ctx, s, name, data)
			cancel()
			if err == nil {
				cfg = got
				return true
			}
			if errors.Is(err, store.ErrNameConflict) { // an earlier uncertain try committed
				_ = s.View(func(tx store.ReadTx) error {
					cs, _ := store.Find[api.Config](tx, store.ByName(name))
					if len(cs) == 1 {
						cfg = cs[0]
					}
					return nil
				})
				return cfg != nil
			}
		}
		return false
	}, waitLong)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return cfg
}

// configNames returns the names of all configs in manager i's local state.
func configNames(t testing.TB, s *store.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := s.View(func(tx store.ReadTx) error {
		cs, err := store.Find[api.Config](tx, store.All())
		for _, c := range cs {
			out[c.Spec.Name] = string(c.Spec.Data)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustConverge(t testing.TB, c *storetest.Cluster) {
	t.Helper()
	if err := c.WaitConverged(waitLong); err != nil {
		t.Fatalf("converge: %v", err)
	}
}

func names(n int, prefix string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}
