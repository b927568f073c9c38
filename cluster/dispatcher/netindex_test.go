package dispatcher

import (
	"context"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// Sessions whose states are older than the newest index built share it
// (and its state); one whose state is newer makes the next build, from
// the newest state.
func TestLatestSharesNewerIndex(t *testing.T) {
	s := storetest.New(t, storetest.Options{Managers: 1}).Store(0)
	ctx := context.Background()
	write := func(id string) {
		t.Helper()
		if _, err := s.Update(ctx, func(tx store.Tx) error {
			return tx.Create(&api.Node{Meta: api.Meta{ID: id}, Spec: api.NodeSpec{Role: api.RoleWorker}})
		}); err != nil {
			t.Fatal(err)
		}
	}
	view := func() store.ReadTx {
		t.Helper()
		tx, err := s.ReadView()
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}
	var c netIndexes
	old := view()
	write("n1")
	got, _, err := c.latest(s, old)
	if err != nil {
		t.Fatal(err)
	}
	if got.Index() <= old.Index() || c.builds.Load() != 1 {
		t.Fatalf("state %d from %d after %d builds; want the newest state, one build", got.Index(), old.Index(), c.builds.Load())
	}
	if _, err := store.Get[api.Node](got, "n1"); err != nil {
		t.Errorf("the shared state lacks the write before it: %v", err)
	}
	again, _, _ := c.latest(s, old)
	if again.Index() != got.Index() || c.builds.Load() != 1 {
		t.Errorf("an older session got state %d after %d builds; want the shared %d, no new build", again.Index(), c.builds.Load(), got.Index())
	}
	write("n2")
	newer, _, _ := c.latest(s, view())
	if newer.Index() <= got.Index() || c.builds.Load() != 2 {
		t.Errorf("a newer session got state %d after %d builds; want newer than %d, a second build", newer.Index(), c.builds.Load(), got.Index())
	}
	// The first shared state is unchanged by the later write.
	if _, err := store.Get[api.Node](got, "n2"); err == nil {
		t.Error("a read view changed after it was taken")
	}
}
