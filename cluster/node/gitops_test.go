package node

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/gitorc/gitorc/e2e/gitserver"
	"github.com/gitorc/gitorc/reconcile"
)

// syncNowAndWait asks for a manual sync, as gitorc sync --wait does, and
// returns its request once the sync it started ended (a request the
// sync state no longer holds fails the test; other errors, such as an
// election, are tried again, as the CLI does).
func syncNowAndWait(t *testing.T, socket string) api.SyncRequest {
	t.Helper()
	ctx := context.Background()
	c := client.Unix(socket)
	req, err := c.Sync(ctx)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	id := req.ID
	if err := storetest.WaitFor(func() bool {
		r, err := c.SyncRequest(ctx, id)
		if client.StatusOf(err) == http.StatusNotFound {
			t.Fatalf("sync request %s: %v", id, err)
		}
		if err == nil {
			req = r
		}
		return err == nil && r.Done()
	}, 60*time.Second); err != nil {
		t.Fatalf("sync request %s never ended: %+v", id, req)
	}
	return req
}

// patchStr is a pointer to s, for a SourcePatch field.
func patchStr(s string) *string { return &s }

// A Git source that cannot be used is on the sync state for gitorc status
// (the report's phase is failed, its message says why), not only in the
// node's log.
func TestUnusableSourceShowsInStatus(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	d, err := testBootstrap(testFlags{dataDir: dir, listen: freeAddr(t), raftListen: freeAddr(t), noWorker: true,
		repo: "ftp://git.invalid/stacks.git", interval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	startNode(t, d, "manager")
	var rep controlapi.SyncReport
	if err := storetest.WaitFor(func() bool {
		var err error
		rep, err = client.Unix(socketFile(dir)).SyncStatus(context.Background())
		return err == nil && rep.State.Phase == api.SyncFailed
	}, 30*time.Second); err != nil {
		t.Fatalf("status never showed the failure: %+v", rep.State)
	}
	if !strings.Contains(rep.State.Message, "the Git source cannot be used:") {
		t.Errorf("status lacks the reason: message %q", rep.State.Message)
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
	// What gitorc status shows of webhooks: the secret is set, this
	// manager serves them on hookAddr, and the deliveries (checked above).
	rep = statusOf(t, socket)
	if !rep.Webhook.SecretSet || rep.Webhook.Listen != hookAddr {
		t.Errorf("status's webhook report %+v, want the secret set, served on %s", rep.Webhook, hookAddr)
	}
	refused := false
	for _, dl := range rep.State.Deliveries {
		refused = refused || dl.Status == http.StatusUnauthorized && strings.HasPrefix(dl.Outcome, "github webhook: signature mismatch")
	}
	if !refused {
		t.Errorf("status's deliveries lack the refused one: %+v", rep.State.Deliveries)
	}
	c := client.Unix(socket)

	// gitorc sync --wait: nothing new, and says so.
	if req := syncNowAndWait(t, socket); req.Result != api.SyncSynced || !strings.Contains(req.Message, "nothing new to apply") {
		t.Errorf("sync --wait: %s: %s, want synced: nothing new to apply", req.Result, req.Message)
	}

	// Suspended: a push is answered "ignored"; status says suspended.
	if sus, err := c.Suspend(ctx); err != nil || !sus.Suspended {
		t.Fatalf("suspend: %+v %v", sus, err)
	}
	third, err := repo.Commit("main", "third", zeroReplicaStack("busybox:3"))
	if err != nil {
		t.Fatal(err)
	}
	if code, msg := deliver(secret, "main", third); code != http.StatusAccepted || !strings.Contains(msg, "ignored: automatic syncs are suspended") {
		t.Fatalf("push while suspended: %d %q", code, msg)
	}
	if rep := statusOf(t, socket); !rep.State.Suspended {
		t.Errorf("status does not say suspended: %+v", rep.State)
	}
	if sus, err := c.Resume(ctx); err != nil || sus.Suspended {
		t.Fatalf("resume: %+v %v", sus, err)
	}

	// A deny window: the push waits (status says the window is closed,
	// and the webhook's request waits); gitorc sync runs anyway.
	deny := api.SyncWindow{Kind: "deny", Schedule: "* * * * *", Duration: api.Duration(time.Hour)}
	src, err := c.SetSource(ctx, controlapi.SourcePatch{Windows: &[]api.SyncWindow{deny}})
	if err != nil || len(src.Source.Windows) != 1 || src.Source.Windows[0] != deny {
		t.Fatalf("source set --window: %+v %v", src.Source.Windows, err)
	}
	if code, msg := deliver(secret, "main", third); code != http.StatusAccepted || !strings.HasPrefix(msg, "sync queued") {
		t.Fatalf("push in a deny window: %d %q", code, msg)
	}
	rep = statusOf(t, socket)
	if ws, err := reconcile.CompileWindows(rep.State.Source.Windows); err != nil || len(rep.State.Source.Windows) != 1 {
		t.Errorf("status's windows %+v: %v", rep.State.Source.Windows, err)
	} else if open, _ := ws.Open(time.Now()); open {
		t.Errorf("status's windows %+v are open, want the deny window closing them", rep.State.Source.Windows)
	}
	waiting := 0
	for _, r := range rep.State.Requests {
		if r.Trigger == api.TriggerWebhook && !r.Done() {
			waiting++
		}
	}
	if waiting != 1 {
		t.Errorf("status during a deny window: %d webhook requests waiting, want 1: %+v", waiting, rep.State.Requests)
	}
	if rep.State.Revision != second {
		t.Errorf("a push synced inside a deny window: %+v", rep.State)
	}
	if req := syncNowAndWait(t, socket); req.Result != api.SyncSynced || !strings.Contains(req.Message, "revision "+third[:7]+" synced") {
		t.Errorf("sync --wait in a deny window: %s: %s", req.Result, req.Message)
	}
	if rep := statusOf(t, socket); rep.State.Revision != third {
		t.Errorf("gitorc sync did not deploy %s: %+v", third[:7], rep.State)
	}

	// A new secret (as gitorc source set --webhook-secret-file sends it,
	// trimmed) and no windows: the old secret is refused.
	src, err = c.SetSource(ctx, controlapi.SourcePatch{Windows: &[]api.SyncWindow{}, WebhookSecret: patchStr("n3w-secret")})
	if err != nil || !src.WebhookSecretSet || len(src.Source.Windows) != 0 {
		t.Fatalf("source set --no-windows --webhook-secret-file: %+v %v", src, err)
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
	if src, err := c.SetSource(ctx, controlapi.SourcePatch{Branch: patchStr("dev")}); err != nil || src.Source.Ref != "dev" {
		t.Fatalf("source set --branch: %+v %v", src.Source, err)
	}
	waitState("followed the new branch", func(s api.SyncState) bool {
		return s.Source.Ref == "dev" && s.Revision == dev && s.Phase == api.SyncSynced
	})
	if code, msg := deliver("n3w-secret", "main", third); code != http.StatusAccepted || msg != "ignored: push to branch main (source follows dev)" {
		t.Errorf("push to the old branch: %d %q", code, msg)
	}

	// gitorc status -o json is the report as the client decodes it.
	jsonOut, err := json.Marshal(statusOf(t, socket))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{secret, "n3w-secret"} {
		if strings.Contains(logs.String(), s) || strings.Contains(string(jsonOut), s) {
			t.Errorf("the webhook secret %q leaked into the log or status", s)
		}
	}
}

// A webhook that names a commit the Git server does not serve yet (the
// server announced the push first) is fetched again until the commit
// shows, and deploys without waiting for a poll; status says it waits
// (its pending request's message, which gitorc status prints).
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
// nothing when something is wrong (the node refuses the patch with 400;
// a window the CLI parses before sending is checked by the node too);
// without a source, sync says how to set one (409).
func TestSourceSetValidates(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "m")
	d, err := testBootstrap(testFlags{dataDir: dir, listen: freeAddr(t), raftListen: freeAddr(t), noWorker: true})
	if err != nil {
		t.Fatal(err)
	}
	startLoggedNode(t, d)
	socket := socketFile(dir)
	c := client.Unix(socket)
	if err := storetest.WaitFor(func() bool { _, err := c.SyncStatus(ctx); return err == nil }, 30*time.Second); err != nil {
		t.Fatal("no status")
	}
	_, err = c.Sync(ctx)
	if client.StatusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "this cluster follows no Git source: set one with gitorc source set --repo") {
		t.Errorf("sync without a source: %d %v", client.StatusOf(err), err)
	}
	interval := api.Duration(-time.Second)
	_, err = c.SetSource(ctx, controlapi.SourcePatch{Repo: patchStr("ftp://x/y"), Interval: &interval,
		Revert: patchStr("sometimes"), SelfHeal: patchStr("maybe")})
	for _, want := range []string{"source not changed", `url "ftp://x/y"`, "--interval -1s: must be positive", `--revert "sometimes": must be auto or off`,
		`--self-heal "maybe": must be auto or off`} {
		if client.StatusOf(err) != http.StatusBadRequest || err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad source set: %d, the error lacks %q: %v", client.StatusOf(err), want, err)
		}
	}
	// A window with no duration (the CLI refuses "deny 0 22 * * 5" before
	// sending it): the node refuses it too.
	_, err = c.SetSource(ctx, controlapi.SourcePatch{Repo: patchStr("https://git.example.com/stacks.git"),
		Windows: &[]api.SyncWindow{{Kind: "deny", Schedule: "0 22 * * 5"}}})
	if client.StatusOf(err) != http.StatusBadRequest || err == nil || !strings.Contains(err.Error(), "sync window 1 (deny 0 22 * * 5 0s)") {
		t.Errorf("bad window: %d %v", client.StatusOf(err), err)
	}
	if rep := statusOf(t, socket); rep.State.Source.URL != "" {
		t.Errorf("a refused change was written: %+v", rep.State.Source)
	}
}
