//go:build porting

package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/gitorc/gitorc/e2e/gitserver"
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

// Webhooks on a real daemon following a repository served by git
// http-backend: a bad signature is refused and changes nothing, a push to
// another branch is ignored, a push to the followed branch deploys (the
// history says the webhook did it); suspend, sync windows, gitorc sync
// --wait, and a new secret. The secret never shows in logs or status.
func TestWebhooksOnDaemon(t *testing.T) {
	ctx := context.Background()
	const secret = "s3cret-hook-key"
	repo, first, dir, hookAddr, d := webhookManager(t, secret)
	if b, _ := os.ReadFile(stateFile(dir)); strings.Contains(string(b), secret) {
		t.Fatal("the webhook secret is in node.json")
	}
	if st, err := loadState(dir); err != nil || st.WebhookListen != hookAddr {
		t.Fatalf("the webhook address is not kept for restarts: %+v %v", st, err)
	}
	logs := startLoggedNode(t, d)
	socket := socketFile(dir)
	waitState := func(what string, cond func(api.SyncState) bool) controlapi.SyncReport {
		t.Helper()
		return waitSync(t, socket, what, func(r controlapi.SyncReport) bool { return cond(r.State) })
	}
	waitState("synced the first commit", func(s api.SyncState) bool { return s.Revision == first && s.Phase == api.SyncSynced })
	// Bootstrap's secret went into the store with the cluster's keys: no
	// sealed file is left, and no file of the node holds it in clear.
	if err := storetest.WaitFor(func() bool {
		_, err := os.Stat(filepath.Join(pkiDir(dir), hookSealed))
		return errors.Is(err, os.ErrNotExist)
	}, 30*time.Second); err != nil {
		t.Error("the sealed webhook secret was not imported")
	}
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || e.Type()&fs.ModeSocket != 0 {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the webhook secret in clear", p)
		}
		return nil
	})
	base := "http://" + hookAddr
	deliver := func(key, branch, commit string) (int, string) {
		t.Helper()
		code, msg, err := gitserver.Deliver(ctx, base, []byte(key), branch, commit)
		if err != nil {
			t.Fatal(err)
		}
		return code, msg
	}

	// A bad signature: 401, no request, nothing synced.
	second, err := repo.Commit("main", "second", zeroReplicaStack("busybox:2"))
	if err != nil {
		t.Fatal(err)
	}
	if code, msg := deliver("wrong", "main", second); code != http.StatusUnauthorized || !strings.Contains(msg, "signature mismatch; nothing changed") {
		t.Fatalf("bad signature: %d %q", code, msg)
	}
	// Another branch: ignored.
	if code, msg := deliver(secret, "dev", second); code != http.StatusAccepted || msg != "ignored: push to branch dev (source follows main)" {
		t.Fatalf("other branch: %d %q", code, msg)
	}
	if rep := statusOf(t, socket); len(rep.State.Requests) != 0 || rep.State.Revision != first {
		t.Fatalf("refused and ignored deliveries changed the state: %+v", rep.State)
	}
	// The followed branch: queued, taken by the leader, deployed.
	if code, msg := deliver(secret, "main", second); code != http.StatusAccepted || msg != "sync queued for main at "+second[:7] {
		t.Fatalf("push: %d %q", code, msg)
	}
	rep := waitState("deployed the pushed commit", func(s api.SyncState) bool {
		return s.Revision == second && s.Phase == api.SyncSynced && len(s.Requests) == 1 && s.Requests[0].Done()
	})
	req := rep.State.Requests[0]
	last := rep.History[len(rep.History)-1]
	if req.Trigger != api.TriggerWebhook || req.Revision != second || req.Result != api.SyncSynced || req.Record != last.ID ||
		last.Trigger != api.TriggerWebhook || last.Request != req.ID || last.Revision != second {
		t.Errorf("request %+v, record %+v", req, last)
	}
	var outcomes []string
	for _, dl := range rep.State.Deliveries {
		outcomes = append(outcomes, fmt.Sprintf("%d %s", dl.Status, dl.Outcome))
	}
	if len(outcomes) != 3 || !strings.HasPrefix(outcomes[0], "401 github webhook: signature mismatch") ||
		!strings.HasPrefix(outcomes[1], "202 ignored: push to branch dev") || !strings.HasPrefix(outcomes[2], "202 sync queued for main at "+second[:7]+" (request "+req.ID) {
		t.Errorf("deliveries on the state:\n%s", strings.Join(outcomes, "\n"))
	}
	out, _, _ := run(t, "status", "--socket", socket)
	for _, want := range []string{"webhook:    secret set; this manager serves POST /hooks/{github,gitlab,gitea,generic} on " + hookAddr,
		"deliveries:", "401 github webhook: signature mismatch"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	// gitorc sync --wait: nothing new, and says so.
	out, errOut, code := run(t, "sync", "--wait", "--socket", socket)
	if code != 0 || !strings.Contains(out, "synced: nothing new to apply") {
		t.Errorf("sync --wait: exit %d\n%s%s", code, out, errOut)
	}

	// Suspended: a push is answered "ignored"; status says suspended.
	if _, errOut, code := run(t, "suspend", "--socket", socket); code != 0 {
		t.Fatalf("suspend: %s", errOut)
	}
	third, err := repo.Commit("main", "third", zeroReplicaStack("busybox:3"))
	if err != nil {
		t.Fatal(err)
	}
	if code, msg := deliver(secret, "main", third); code != http.StatusAccepted || !strings.Contains(msg, "ignored: automatic syncs are suspended") {
		t.Fatalf("push while suspended: %d %q", code, msg)
	}
	if out, _, _ := run(t, "status", "--socket", socket); !strings.Contains(out, "(suspended: no automatic syncs") {
		t.Errorf("status does not say suspended:\n%s", out)
	}
	if _, errOut, code := run(t, "resume", "--socket", socket); code != 0 {
		t.Fatalf("resume: %s", errOut)
	}

	// A deny window: the push waits (status says until when); gitorc sync
	// runs anyway.
	if out, errOut, code := run(t, "source", "set", "--socket", socket, "--window", "deny * * * * * 1h"); code != 0 || !strings.Contains(out, "window:     deny * * * * * 1h0m0s") {
		t.Fatalf("source set --window: exit %d\n%s%s", code, out, errOut)
	}
	if code, msg := deliver(secret, "main", third); code != http.StatusAccepted || !strings.HasPrefix(msg, "sync queued") {
		t.Fatalf("push in a deny window: %d %q", code, msg)
	}
	out, _, _ = run(t, "status", "--socket", socket)
	if !strings.Contains(out, "sync window closed") || !strings.Contains(out, "request:    webhook") {
		t.Errorf("status during a deny window:\n%s", out)
	}
	if rep := statusOf(t, socket); rep.State.Revision != second {
		t.Errorf("a push synced inside a deny window: %+v", rep.State)
	}
	out, errOut, code = run(t, "sync", "--wait", "--timeout", "60s", "--socket", socket)
	if code != 0 || !strings.Contains(out, "synced: revision "+third[:7]+" synced") {
		t.Errorf("sync --wait in a deny window: exit %d\n%s%s", code, out, errOut)
	}
	if rep := statusOf(t, socket); rep.State.Revision != third {
		t.Errorf("gitorc sync did not deploy %s: %+v", third[:7], rep.State)
	}

	// A new secret: the old one is refused.
	keyFile := filepath.Join(t.TempDir(), "hook.secret")
	if err := os.WriteFile(keyFile, []byte("n3w-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := run(t, "source", "set", "--socket", socket, "--no-windows", "--webhook-secret-file", keyFile); code != 0 || !strings.Contains(out, "webhook secret: set") {
		t.Fatalf("source set --webhook-secret-file: exit %d\n%s%s", code, out, errOut)
	}
	if code, _ := deliver(secret, "main", third); code != http.StatusUnauthorized {
		t.Errorf("old secret: %d, want 401", code)
	}
	if code, _ := deliver("n3w-secret", "main", third); code != http.StatusAccepted {
		t.Errorf("new secret: %d, want 202", code)
	}

	// Another branch: the leader's loop restarts on it and syncs at once;
	// pushes to main are now ignored.
	dev, err := repo.Commit("dev", "dev", zeroReplicaStack("busybox:dev"))
	if err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := run(t, "source", "set", "--socket", socket, "--branch", "dev"); code != 0 {
		t.Fatalf("source set --branch: exit %d\n%s%s", code, out, errOut)
	}
	waitState("followed the new branch", func(s api.SyncState) bool {
		return s.Source.Ref == "dev" && s.Revision == dev && s.Phase == api.SyncSynced
	})
	if code, msg := deliver("n3w-secret", "main", third); code != http.StatusAccepted || msg != "ignored: push to branch main (source follows dev)" {
		t.Errorf("push to the old branch: %d %q", code, msg)
	}

	jsonOut, _, _ := run(t, "status", "--socket", socket, "-o", "json")
	for _, s := range []string{secret, "n3w-secret"} {
		if strings.Contains(logs.String(), s) || strings.Contains(jsonOut, s) {
			t.Errorf("the webhook secret %q leaked into the log or status", s)
		}
	}
}

// A webhook that names a commit the Git server does not serve yet (the
// server announced the push first) is fetched again until the commit
// shows, and deploys without waiting for a poll; status says it waits.
func TestWebhookForCommitNotServedYet(t *testing.T) {
	ctx := context.Background()
	const secret = "hook-key"
	repo, first, dir, hookAddr, d := webhookManager(t, secret)
	startLoggedNode(t, d)
	socket := socketFile(dir)
	var rep controlapi.SyncReport
	wait := func(what string, cond func(controlapi.SyncReport) bool) {
		t.Helper()
		rep = waitSync(t, socket, what, cond)
	}
	wait("synced the first commit", func(r controlapi.SyncReport) bool {
		return r.State.Revision == first && r.State.Phase == api.SyncSynced
	})

	second, err := repo.CommitLocal("main", "second", zeroReplicaStack("busybox:2"))
	if err != nil {
		t.Fatal(err)
	}
	if code, msg, err := gitserver.Deliver(ctx, "http://"+hookAddr, []byte(secret), "main", second); err != nil || code != http.StatusAccepted {
		t.Fatalf("deliver: %d %q %v", code, msg, err)
	}
	wait("retried the unserved commit", func(r controlapi.SyncReport) bool {
		return len(r.State.Requests) == 1 && r.State.Requests[0].Pending() && r.State.Requests[0].Attempts >= 1
	})
	if req := rep.State.Requests[0]; !strings.Contains(req.Message, "the source does not show "+second[:7]+" yet") || rep.State.Revision != first {
		t.Fatalf("waiting request %+v, revision %s", req, rep.State.Revision)
	}
	if out, _, _ := run(t, "status", "--socket", socket); !strings.Contains(out, "does not show "+second[:7]+" yet") {
		t.Errorf("status does not say the webhook waits:\n%s", out)
	}
	if err := repo.Push("main"); err != nil {
		t.Fatal(err)
	}
	wait("deployed the commit once served", func(r controlapi.SyncReport) bool {
		return r.State.Revision == second && r.State.Phase == api.SyncSynced && len(r.State.Requests) == 1 && r.State.Requests[0].Done()
	})
	req := rep.State.Requests[0]
	last := rep.History[len(rep.History)-1]
	if req.Result != api.SyncSynced || last.Trigger != api.TriggerWebhook || last.Revision != second || last.Request != req.ID {
		t.Errorf("request %+v, record %+v", req, last)
	}
}

// gitorc source set checks what it is given, all at once, and changes
// nothing when something is wrong; without a source, sync says how to
// set one.
func TestSourceSetValidates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	d, err := bootstrap(bootstrapFlags{dataDir: dir, listen: freeAddr(t), raftListen: freeAddr(t), noWorker: true})
	if err != nil {
		t.Fatal(err)
	}
	startLoggedNode(t, d)
	socket := socketFile(dir)
	if err := storetest.WaitFor(func() bool { _, _, code := run(t, "status", "--socket", socket); return code == 0 }, 30*time.Second); err != nil {
		t.Fatal("no status")
	}
	_, errOut, code := run(t, "sync", "--socket", socket)
	if code != 1 || !strings.Contains(errOut, "this cluster follows no Git source: set one with gitorc source set --repo") {
		t.Errorf("sync without a source: exit %d: %s", code, errOut)
	}
	_, errOut, code = run(t, "source", "set", "--socket", socket, "--repo", "ftp://x/y", "--interval", "-1s", "--revert", "sometimes", "--self-heal", "maybe")
	for _, want := range []string{"source not changed", `url "ftp://x/y"`, "--interval -1s: must be positive", `--revert "sometimes": must be auto or off`,
		`--self-heal "maybe": must be auto or off`} {
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("bad source set: exit %d, stderr lacks %q:\n%s", code, want, errOut)
		}
	}
	if _, errOut, code := run(t, "source", "set", "--socket", socket, "--window", "deny 0 22 * * 5"); code != 1 || !strings.Contains(errOut, "--window: sync window") {
		t.Errorf("bad window: exit %d: %s", code, errOut)
	}
	if rep := statusOf(t, socket); rep.State.Source.URL != "" {
		t.Errorf("a refused change was written: %+v", rep.State.Source)
	}
}
