package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// A Git source that cannot be used is on the sync state for gitorc status,
// not only in the node's log.
func TestUnusableSourceShowsInStatus(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	d, err := bootstrap(bootstrapFlags{dataDir: dir, listen: freeAddr(t), raftListen: freeAddr(t), noWorker: true,
		repo: "ftp://git.invalid/stacks.git", interval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	startNode(t, d, "manager")
	var out string
	if err := storetest.WaitFor(func() bool {
		var code int
		out, _, code = run(t, "status", "--socket", socketFile(dir))
		return code == 0 && strings.Contains(out, "sync:       failed")
	}, 30*time.Second); err != nil {
		t.Fatalf("status never showed the failure:\n%s", out)
	}
	if !strings.Contains(out, "the Git source cannot be used:") {
		t.Errorf("status lacks the reason:\n%s", out)
	}
}
