package node

import (
	"context"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
)

// historyOf is the sync history gitorc history prints.
func historyOf(t *testing.T, socket string) []api.SyncRecord {
	t.Helper()
	hist, err := client.Unix(socket).History(context.Background(), 0)
	if err != nil {
		t.Fatalf("history: %v", err)
	}
	return hist
}
