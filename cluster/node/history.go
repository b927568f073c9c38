package node

import (
	"context"

	"github.com/gitorc/gitorc/cluster/api"
)

// History is GET /v1/sync/history[?limit=N]: the sync records, oldest
// first (the last N with a limit).
func (s syncAPI) History(ctx context.Context, limit int) ([]api.SyncRecord, error) {
	hist, err := s.cl.History(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	if limit > 0 && len(hist) > limit {
		hist = hist[len(hist)-limit:]
	}
	return hist, nil
}
