package node

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// The notifier returns when its context ends, also when no sync record
// changes meanwhile: the leader's controllers are stopped together and
// waited for, so a notifier that kept waiting for a record kept a manager
// that lost the lead from ever starting them again when it led once more
// (its gitops loop, orchestrator and scheduler stayed off; the chaos e2e
// found it). The test gives it half a second to reach its watch, the
// step where it hung, before the context ends.
func TestNotifierStopsWithItsContext(t *testing.T) {
	c := storetest.New(t, storetest.Options{Managers: 1})
	d := &daemon{store: c.Store(0), log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.runNotifier(ctx) }()
	time.Sleep(500 * time.Millisecond) // lets it reach the watch: the pass does not depend on it
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("runNotifier: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("runNotifier did not return 30s after its context ended (no sync record changed)")
	}
}
