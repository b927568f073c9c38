package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/server"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/gitorc/gitorc/reconcile/storecluster"
)

var hexPrefix = regexp.MustCompile(`^[0-9a-f]{4,40}$`)

// resolvePin finds the commit a rollback names: a revision the history
// knows by a unique prefix, else whatever the source's clone resolves.
func resolvePin(ctx context.Context, df *differ, st api.SyncState, hist []api.SyncRecord, rev string) (string, error) {
	rev = strings.TrimSpace(rev)
	if hexPrefix.MatchString(rev) {
		known := map[string]bool{}
		for _, h := range hist {
			known[h.Revision] = true
		}
		known[st.Revision], known[st.LastGoodRevision] = true, true
		var found []string
		for c := range known {
			if c != "" && strings.HasPrefix(c, rev) {
				found = append(found, c)
			}
		}
		switch len(found) {
		case 1:
			return found[0], nil
		case 0:
		default:
			slices.Sort(found)
			return "", fmt.Errorf("revision %s is ambiguous: %s", rev, strings.Join(found, ", "))
		}
	}
	src, err := df.source(st.Source)
	if err != nil {
		return "", err
	}
	if _, err := src.Fetch(ctx); err != nil {
		return "", err
	}
	return src.ResolveRevision(rev)
}

// Rollback is POST /v1/sync/rollback: the cluster is pinned to an older
// revision (in the sync state, so any manager can take the request) and a
// sync is requested for the leader to apply it; the pin holds until
// gitorc sync or a new commit on the followed ref. Revisions the history
// does not know are resolved in the clone of gitorc diff (one per node).
func (df *differ) Rollback(ctx context.Context, req controlapi.RollbackRequest) (controlapi.RollbackAnswer, error) {
	fail := func(code int, err error) (controlapi.RollbackAnswer, error) {
		return controlapi.RollbackAnswer{}, server.WithStatus(code, err)
	}
	cl := storecluster.New(df.d.store)
	st, err := cl.Sync(ctx)
	if err != nil {
		return fail(http.StatusServiceUnavailable, err)
	}
	if st.Source.URL == "" {
		return fail(http.StatusConflict, errors.New("the cluster follows no Git source: there is no revision to roll back to"))
	}
	hist, err := cl.History(ctx)
	if err != nil {
		return fail(http.StatusServiceUnavailable, err)
	}
	commit, err := resolvePin(ctx, df, st, hist, req.Revision)
	if err != nil {
		return fail(http.StatusBadRequest, err)
	}
	if slices.Contains(st.FailedRevisions, commit) {
		return fail(http.StatusConflict, fmt.Errorf("revision %s failed before (gitorc history says why): roll back to a good one", reconcile.ShortCommit(commit)))
	}
	ans := controlapi.RollbackAnswer{Pin: api.SyncPin{Revision: commit, RequestedAt: time.Now().UTC()}, Request: rollbackRequestID()}
	_, err = cl.UpdateSync(ctx, func(s *api.SyncState) error {
		pin := ans.Pin
		s.Pin = &pin
		// A manual sync request: served at once, suspended or not. A
		// pin not in effect yet is applied by it, not released.
		s.Requests = append(s.Requests, api.SyncRequest{ID: ans.Request, Trigger: api.TriggerManual, At: ans.Pin.RequestedAt})
		return nil
	})
	if err != nil {
		return fail(http.StatusServiceUnavailable, err)
	}
	df.d.log.Info("rollback requested", "revision", reconcile.ShortCommit(commit))
	return ans, nil
}

func rollbackRequestID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "rollback-" + hex.EncodeToString(b[:])
}
