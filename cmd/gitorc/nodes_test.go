package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// The CLI's tests that need a running node start it in-process with
// cluster/node/nodetest; these are what they share.

// webStack is a stack whose service needs no worker to be synced: no
// replicas, or as many as asked of an image that is never pulled.
func webStack(image string, replicas int, extra string) string {
	return fmt.Sprintf("services:\n  app:\n    image: %s\n    deploy:\n      replicas: %d\n%s", image, replicas, extra)
}

// zeroReplicaStack is a stack whose one service has no replicas.
func zeroReplicaStack(image string) map[string]string {
	return map[string]string{"app/compose.yaml": "services:\n  web:\n    image: " + image + "\n    deploy:\n      replicas: 0\n"}
}

// waitSynced waits until the node at socket runs commit, synced.
func waitSynced(t *testing.T, socket, commit string) api.SyncState {
	t.Helper()
	var st api.SyncState
	if err := storetest.WaitFor(func() bool {
		rep, err := client.Unix(socket).SyncStatus(context.Background())
		st = rep.State
		return err == nil && st.Revision == commit && st.Phase == api.SyncSynced && st.InFlight == nil
	}, 60*time.Second); err != nil {
		t.Fatalf("never synced %s: %+v", commit[:7], st)
	}
	return st
}
