package storetest_test

import (
	"errors"
	"testing"

	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/google/go-cmp/cmp"
)

func TestWritesCommitOnAll(t *testing.T) {
	c := storetest.New(t, storetest.Options{})
	l := c.Leader()
	ctx := ctxT(t, waitLong)
	if _, err := createConfig(ctx, c.Store(l), "on-leader", "a"); err != nil {
		t.Fatal(err)
	}
	f := (l + 1) % 3
	cfg, err := createConfig(ctx, c.Store(f), "via-follower", "b")
	if err != nil {
		t.Fatalf("forwarded write: %v", err)
	}
	if cfg.ID == "" || cfg.Version == 0 || cfg.CreatedAt.IsZero() {
		t.Errorf("created object not stamped: %+v", cfg.Meta)
	}
	// Update returns once the follower applied its forwarded write.
	if got := configNames(t, c.Store(f)); got["via-follower"] != "b" {
		t.Errorf("follower does not read its own write: %v", got)
	}
	mustConverge(t, c)
	want := map[string]string{"on-leader": "a", "via-follower": "b"}
	for i := range 3 {
		if diff := cmp.Diff(want, configNames(t, c.Store(i))); diff != "" {
			t.Errorf("manager %d (-want +got):\n%s", i, diff)
		}
	}
}

func TestFollowerWithoutForwarderNamesLeader(t *testing.T) {
	c := storetest.New(t, storetest.Options{NoForwarder: true})
	l := c.Leader()
	f := (l + 1) % 3
	_, err := createConfig(ctxT(t, waitLong), c.Store(f), "x", "y")
	var nle *store.NotLeaderError
	if !errors.As(err, &nle) || !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("err = %v, want NotLeaderError", err)
	}
	if want := "not leader: " + c.Addr(l); err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}
