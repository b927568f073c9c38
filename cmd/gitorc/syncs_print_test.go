package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/spf13/cobra"
)

const (
	revOne = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	revTwo = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// gitorc diff prints the diff the API answers, field by field, headed by
// what it compares, and exits 0 (no difference), 1 (differences) or 2 (an
// error, or problems); -o json prints the diff as it came; --revision and
// --local are what it sends; no colours on a non-terminal.
func TestDiffCommandPrintsAndExits(t *testing.T) {
	var head reconcile.Diff // the answer for HEAD
	changed := reconcile.Diff{Revision: revTwo, Changeset: reconcile.Changeset{Steps: []reconcile.Step{
		{Kind: reconcile.KindService, Name: "web_app", Stack: "web", Action: reconcile.Update,
			Changes: []reconcile.Change{{Path: "task.container.image", From: `"registry.example/app:1"`, To: `"registry.example/app:2"`}}},
		{Kind: reconcile.KindService, Name: "web_worker", Stack: "web", Action: reconcile.Create},
		{Kind: reconcile.KindNetwork, Name: "db_default", Stack: "db", Action: reconcile.Delete},
		{Kind: reconcile.KindSecret, Name: "web_pw", Stack: "web", Action: reconcile.Update,
			Changes: []reconcile.Change{{Path: "data_hash", From: `"hmac-sha256:aa"`, To: `"hmac-sha256:bb"`}}},
		{Kind: reconcile.KindService, Name: "db_app", Stack: "db", Action: reconcile.Unchanged},
	}}}
	fake, socket := serveFake(t, map[string]func([]byte) (int, any){
		"POST /v1/sync/diff": func(b []byte) (int, any) {
			var req controlapi.DiffRequest
			_ = json.Unmarshal(b, &req)
			switch {
			case req.Dir != "":
				d := changed
				d.Revision, d.Dir = "", req.Dir
				return http.StatusOK, d
			case req.Revision == "nosuchbranch":
				return http.StatusBadRequest, "diff: revision nosuchbranch not found"
			case req.Revision != "":
				return http.StatusOK, changed
			}
			return http.StatusOK, head
		},
	})
	diff := func(args ...string) (string, string, int) {
		t.Helper()
		return run(t, append([]string{"diff", "--socket", socket}, args...)...)
	}

	head = reconcile.Diff{Revision: revOne, Changeset: reconcile.Changeset{Steps: []reconcile.Step{
		{Kind: reconcile.KindService, Name: "web_app", Action: reconcile.Unchanged}}}}
	out, errOut, code := diff()
	if code != diffSame || !strings.Contains(out, "revision 1111111 against the cluster:") ||
		!strings.Contains(out, "0 to create, 0 to update, 0 to delete") || strings.Contains(out, "web_app") {
		t.Errorf("nothing changed: exit %d\n%s%s", code, out, errOut)
	}

	head = changed
	out, errOut, code = diff()
	if code != diffDiffers || !strings.Contains(out, "revision 2222222 against the cluster:") {
		t.Errorf("changes: exit %d, want 1\n%s%s", code, out, errOut)
	}
	for _, w := range []string{"~ service web_app (update)", `task.container.image: "registry.example/app:1" -> "registry.example/app:2"`,
		"+ service web_worker (create)", "- network db_default (delete)", "~ secret  web_pw (update)",
		`data_hash: "hmac-sha256:aa" -> "hmac-sha256:bb"`, "1 to create, 2 to update, 1 to delete"} {
		if !strings.Contains(out, w) {
			t.Errorf("diff lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "db_app") {
		t.Errorf("an unchanged object listed without -v:\n%s", out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colours on a non-terminal:\n%q", out)
	}
	// The same as JSON, for scripts.
	js, _, code := diff("-o", "json")
	var res reconcile.Diff
	if err := json.Unmarshal([]byte(js), &res); err != nil || code != diffDiffers || res.Revision != revTwo || !res.Differs() ||
		len(res.Changeset.Steps) != len(changed.Changeset.Steps) {
		t.Errorf("json: exit %d %v\n%s", code, err, js)
	}

	// A revision, as given; one the manager does not know: exit 2.
	out, errOut, code = diff("--revision", "2222222bb")
	if code != diffDiffers || !strings.Contains(out, "revision 2222222 against the cluster:") {
		t.Errorf("--revision: exit %d\n%s%s", code, out, errOut)
	}
	if bs := fake.bodies("POST /v1/sync/diff"); !strings.Contains(bs[len(bs)-1], `"revision":"2222222bb"`) {
		t.Errorf("--revision sent %s", bs[len(bs)-1])
	}
	if _, errOut, code := diff("--revision", "nosuchbranch"); code != diffError || !strings.Contains(errOut, "nosuchbranch not found") {
		t.Errorf("unknown revision: exit %d %s", code, errOut)
	}
	// A local tree: sent as an absolute directory.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code = diff("--local", ".")
	if code != diffDiffers || !strings.Contains(out, "local tree "+wd+" against the cluster:") {
		t.Errorf("--local: exit %d\n%s%s", code, out, errOut)
	}

	// Problems: exit 2 with each problem, and how many on stderr.
	head = reconcile.Diff{Revision: revTwo, Changeset: reconcile.Changeset{Problems: []string{"web/compose.yaml:3: did not find expected node content"}}}
	out, errOut, code = diff()
	if code != diffError || !strings.Contains(out, "problem: web/compose.yaml:3") ||
		!strings.Contains(errOut, "revision 2222222 cannot be applied: 1 problem(s)") {
		t.Errorf("problems: exit %d\n%s%s", code, out, errOut)
	}

	// Drift is marked.
	head = reconcile.Diff{Revision: revOne, Changeset: reconcile.Changeset{Steps: []reconcile.Step{{Kind: reconcile.KindService,
		Name: "web_app", Action: reconcile.Update, Drift: true, Changes: []reconcile.Change{{Path: "replicas", From: "2", To: "0"}}}}}}
	out, errOut, code = diff()
	if code != diffDiffers || !strings.Contains(out, "~ service web_app (update) drift: changed outside Git") || !strings.Contains(out, "replicas: 2 -> 0") {
		t.Errorf("drift: exit %d\n%s%s", code, out, errOut)
	}
}

// colorOutput colours terminals only: never a buffer or a regular file.
func TestDiffColorOutput(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if colorOutput(&bytes.Buffer{}) || colorOutput(f) {
		t.Error("colours for a buffer or a file")
	}
}

// gitorc rollback --to REV sends REV, says what it pinned, and with
// --wait the outcome of the rollback's sync request; the API's refusals
// (an unknown revision, one that failed before) fail the command.
func TestRollbackCommandPrints(t *testing.T) {
	fake, socket := serveFake(t, map[string]func([]byte) (int, any){
		"POST /v1/sync/rollback": func(b []byte) (int, any) {
			var req controlapi.RollbackRequest
			_ = json.Unmarshal(b, &req)
			switch req.Revision {
			case "ffffffff":
				return http.StatusNotFound, "revision ffffffff not found"
			case "3333333":
				return http.StatusConflict, "revision 3333333 failed before (gitorc history says why): roll back to a good one"
			}
			return http.StatusOK, controlapi.RollbackAnswer{Pin: api.SyncPin{Revision: revOne}, Request: "r1"}
		},
		"GET /v1/sync": answer(http.StatusOK, controlapi.SyncReport{State: api.SyncState{Requests: []api.SyncRequest{
			{ID: "r0", StartedAt: time.Now(), FinishedAt: time.Now(), Result: api.SyncDegraded, Message: "another request"},
			{ID: "r1", StartedAt: time.Now(), FinishedAt: time.Now(), Result: api.SyncSynced, Message: "revision 1111111 applied"},
		}}}),
	})
	out, errOut, code := run(t, "rollback", "--socket", socket, "--to", "1111111", "--wait")
	if code != 0 || !strings.Contains(out, "pinned to 1111111 by rollback (until the next commit or gitorc sync)\n") ||
		!strings.Contains(out, "synced: revision 1111111 applied\n") {
		t.Errorf("rollback --wait: exit %d\n%s%s", code, out, errOut)
	}
	if bs := fake.bodies("POST /v1/sync/rollback"); len(bs) != 1 || !strings.Contains(bs[0], `"revision":"1111111"`) {
		t.Errorf("rollback sent %q", bs)
	}
	out, errOut, code = run(t, "rollback", "--socket", socket, "--to", "1111111")
	if code != 0 || !strings.Contains(out, "pinned to 1111111 by rollback") || !strings.Contains(out, "the leader applies it now") {
		t.Errorf("rollback: exit %d\n%s%s", code, out, errOut)
	}
	for rev, want := range map[string]string{"ffffffff": "ffffffff not found", "3333333": "failed before"} {
		if _, errOut, code := run(t, "rollback", "--socket", socket, "--to", rev); code == 0 || !strings.Contains(errOut, want) {
			t.Errorf("rollback --to %s: exit %d %s", rev, code, errOut)
		}
	}
	if _, errOut, code := run(t, "rollback", "--socket", socket); code == 0 || !strings.Contains(errOut, "--to REV") {
		t.Errorf("rollback without --to: exit %d %s", code, errOut)
	}
}

// gitorc history is a table: a header, then a line per sync, oldest
// first, each starting with the short revision.
func TestHistoryCommandTable(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	hist := []api.SyncRecord{
		{Meta: api.Meta{ID: "h1"}, Revision: revOne, Trigger: api.TriggerPoll, StartedAt: at, FinishedAt: at.Add(time.Second), Result: api.SyncSynced, Message: "applied"},
		{Meta: api.Meta{ID: "h2"}, Revision: revTwo, Trigger: api.TriggerPoll, StartedAt: at.Add(time.Minute), FinishedAt: at.Add(time.Minute + 2*time.Second), Result: api.SyncSynced},
		{Meta: api.Meta{ID: "h3"}, Revision: revOne, Trigger: api.TriggerRollback, StartedAt: at.Add(2 * time.Minute), Result: api.SyncSynced, Message: "first line\nsecond line"},
	}
	_, socket := serveFake(t, map[string]func([]byte) (int, any){"GET /v1/sync/history": answer(http.StatusOK, hist)})
	text, errOut, code := run(t, "history", "--socket", socket)
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if code != 0 || len(lines) != len(hist)+1 || !strings.HasPrefix(lines[0], "REVISION") {
		t.Fatalf("history: exit %d\n%s%s", code, text, errOut)
	}
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "1111111 ") || !strings.Contains(last, "rollback") || !strings.HasSuffix(last, "first line") ||
		!strings.HasPrefix(lines[2], "2222222 ") || !strings.Contains(lines[1], "(1s)") {
		t.Errorf("history:\n%s", text)
	}

	_, socket = serveFake(t, map[string]func([]byte) (int, any){"GET /v1/sync/history": answer(http.StatusOK, []api.SyncRecord{})})
	if text, _, code := run(t, "history", "--socket", socket); code != 0 || text != "no syncs yet\n" {
		t.Errorf("no history: exit %d %q", code, text)
	}
}

// gitorc status says whether a rollback pins the cluster, a failed or
// degraded sync with its message and failed revisions, and a redacted
// source URL.
func TestPrintStatusPinAndFailures(t *testing.T) {
	var b bytes.Buffer
	printPin(&b, api.SyncState{Pin: &api.SyncPin{Revision: revOne, Head: revTwo}})
	if got := b.String(); got != "pinned to 1111111 by rollback (until the next commit or gitorc sync)\n" {
		t.Errorf("printPin applied = %q", got)
	}
	b.Reset()
	printPin(&b, api.SyncState{Pin: &api.SyncPin{Revision: revOne}})
	if got := b.String(); got != "pinned to 1111111 by rollback (until the next commit or gitorc sync): the leader has not applied it yet\n" {
		t.Errorf("printPin not applied = %q", got)
	}
	b.Reset()
	printPin(&b, api.SyncState{Revision: revOne})
	if b.Len() != 0 {
		t.Errorf("printPin without a pin = %q", b.String())
	}

	status := func(rep controlapi.SyncReport) string {
		t.Helper()
		var out bytes.Buffer
		cmd := &cobra.Command{}
		cmd.SetOut(&out)
		if err := printStatus(cmd, rep); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	src := api.SourceSpec{URL: "https://deploy:t0ken@git.example.com/ops/stacks.git", Ref: "main", Interval: api.Duration(time.Minute)}
	for _, tc := range []struct {
		name  string
		state api.SyncState
		want  []string
	}{
		{"pinned", api.SyncState{Source: src, Phase: api.SyncSynced, Revision: revOne, Pin: &api.SyncPin{Revision: revOne, Head: revTwo}},
			[]string{"sync:       synced", "pinned to 1111111 by rollback (until the next commit or gitorc sync)"}},
		{"failed", api.SyncState{Source: src, Phase: api.SyncFailed, Revision: revOne, FailedRevisions: []string{revTwo},
			Message: "revision 2222222 does not load:\nweb/compose.yaml:6: unknown field replcas"},
			[]string{"sync:       failed", "web/compose.yaml:6", "failed:     " + revTwo + " (not retried until the source moves)"}},
		{"degraded", api.SyncState{Source: src, Phase: api.SyncDegraded, Revision: revOne, LastGoodRevision: revOne,
			FailedRevisions: []string{revTwo}, Message: "revision 2222222 degraded; reverted to 1111111"},
			[]string{"sync:       degraded", "reverted to 1111111", "failed:     " + revTwo + " (not retried"}},
	} {
		out := status(controlapi.SyncReport{State: tc.state})
		for _, w := range append(tc.want, "source:     https://deploy:***@git.example.com/ops/stacks.git (main") {
			if !strings.Contains(out, w) {
				t.Errorf("%s: status lacks %q:\n%s", tc.name, w, out)
			}
		}
		if strings.Contains(out, "t0ken") {
			t.Errorf("%s: status shows the Git password:\n%s", tc.name, out)
		}
		if tc.state.Pin == nil && strings.Contains(out, "pinned") {
			t.Errorf("%s: status says pinned:\n%s", tc.name, out)
		}
	}
}

// gitorc status shows a notification that failed with its error.
func TestPrintNotificationsFailed(t *testing.T) {
	var b bytes.Buffer
	printNotifications(&b, api.SyncState{Source: api.SourceSpec{Notify: &api.NotifySpec{URL: "http://127.0.0.1:1/events"}},
		Notifications: []api.NotifyDelivery{
			{Time: now(), Target: "url", Revision: revOne, Event: "synced", Attempts: 1},
			{Time: now(), Target: "url", Revision: revTwo, Event: "synced", Attempts: 3, Error: "POST http://127.0.0.1:1/events: 502 Bad Gateway receiver down"},
		}})
	out := b.String()
	for _, w := range []string{"notify:     http://127.0.0.1:1/events\n", "2222222 FAILED: POST http://127.0.0.1:1/events: 502 Bad Gateway", "1111111 delivered"} {
		if !strings.Contains(out, w) {
			t.Errorf("notifications lack %q:\n%s", w, out)
		}
	}
}

// gitorc source set reads its secret files (trimmed; "-" is standard
// input) into the patch it sends, sends only the flags given, refuses
// credentials in --repo before sending anything, and prints the source
// as the API answers it.
func TestSourceSetSendsAndPrints(t *testing.T) {
	var answerWith controlapi.SourceReport
	fake, socket := serveFake(t, map[string]func([]byte) (int, any){
		"PATCH /v1/source": func([]byte) (int, any) { return http.StatusOK, answerWith },
	})
	patch := func() controlapi.SourcePatch {
		t.Helper()
		bs := fake.bodies("PATCH /v1/source")
		if len(bs) == 0 {
			t.Fatal("no PATCH /v1/source")
		}
		var p controlapi.SourcePatch
		if err := json.Unmarshal([]byte(bs[len(bs)-1]), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	str := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	dir := t.TempDir()
	keyFile, tokenFile := filepath.Join(dir, "notify.key"), filepath.Join(dir, "gh.token")
	_ = os.WriteFile(keyFile, []byte("notify-key\n"), 0o600)
	_ = os.WriteFile(tokenFile, []byte("gh-token\n"), 0o600)
	answerWith = controlapi.SourceReport{Source: api.SourceSpec{URL: "https://git.example.com/ops/stacks.git", Ref: "main",
		Interval: api.Duration(time.Minute), Revert: "auto",
		Notify: &api.NotifySpec{URL: "http://127.0.0.1:1/events", CommitStatus: "github", CommitStatusRepo: "ops/stacks"}},
		NotifySecretSet: true, CommitStatusTokenSet: true}
	out, errOut, code := run(t, "source", "set", "--socket", socket, "--notify", "http://127.0.0.1:1/events", "--notify-secret-file", keyFile,
		"--commit-status", "github", "--commit-status-api", "http://127.0.0.1:1", "--commit-status-repo", "ops/stacks", "--commit-status-token-file", tokenFile)
	if code != 0 || !strings.Contains(out, "notify:     http://127.0.0.1:1/events (signed)") || !strings.Contains(out, "commit status: github ops/stacks (token set)") {
		t.Errorf("source set --notify: exit %d\n%s%s", code, out, errOut)
	}
	p := patch()
	if str(p.NotifyURL) != "http://127.0.0.1:1/events" || str(p.NotifySecret) != "notify-key" || str(p.CommitStatus) != "github" ||
		str(p.CommitStatusAPI) != "http://127.0.0.1:1" || str(p.CommitStatusRepo) != "ops/stacks" || str(p.CommitStatusToken) != "gh-token" ||
		p.Repo != nil || p.GitPassword != nil || p.Interval != nil {
		t.Errorf("source set --notify sent %+v", p)
	}

	// The Git password from standard input.
	answerWith = controlapi.SourceReport{Source: answerWith.Source, GitCredentialsSet: true}
	out, errOut, code = runIn(t, "t0ken-s3cret-pw\n", "source", "set", "--socket", socket, "--git-username", "deploy", "--git-password-file", "-")
	if code != 0 || !strings.Contains(out, "git credentials: set") || strings.Contains(out, "t0ken") {
		t.Errorf("source set --git-password-file -: exit %d\n%s%s", code, out, errOut)
	}
	if p := patch(); str(p.GitUsername) != "deploy" || str(p.GitPassword) != "t0ken-s3cret-pw" || p.NotifyURL != nil {
		t.Errorf("source set --git-password-file - sent %+v", p)
	}

	// Credentials in the URL: refused here, nothing sent.
	sent := len(fake.bodies("PATCH /v1/source"))
	out, errOut, code = run(t, "source", "set", "--socket", socket, "--repo", "http://deploy:t0ken-s3cret-pw@127.0.0.1:1/repo.git")
	if code == 0 || !strings.Contains(errOut, "--git-password-file") || strings.Contains(out+errOut, "t0ken") {
		t.Errorf("source set --repo with credentials: exit %d\n%s%s", code, out, errOut)
	}
	if n := len(fake.bodies("PATCH /v1/source")); n != sent {
		t.Errorf("source set --repo with credentials sent a patch")
	}
	// An empty secret file is refused.
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, []byte("\n"), 0o600)
	if _, errOut, code := run(t, "source", "set", "--socket", socket, "--notify-secret-file", empty); code == 0 || !strings.Contains(errOut, "the file is empty") {
		t.Errorf("an empty --notify-secret-file: exit %d %s", code, errOut)
	}
}

// gitorc sync --wait waits for its request's outcome and prints it; the
// exit code is 1 when the sync failed or degraded.
func TestSyncWaitExitCode(t *testing.T) {
	for result, want := range map[api.SyncPhase]int{api.SyncSynced: 0, api.SyncDegraded: 1, api.SyncFailed: 1} {
		done := api.SyncRequest{ID: "s1", Trigger: api.TriggerManual, StartedAt: time.Now(), FinishedAt: time.Now(), Result: result, Message: "the outcome"}
		_, socket := serveFake(t, map[string]func([]byte) (int, any){
			"POST /v1/sync":            answer(http.StatusOK, api.SyncRequest{ID: "s1", Trigger: api.TriggerManual}),
			"GET /v1/sync/requests/s1": answer(http.StatusOK, done),
		})
		out, errOut, code := run(t, "sync", "--socket", socket, "--wait", "--timeout", "60s")
		if code != want || !strings.Contains(out, "sync requested (request s1)") || !strings.Contains(out, result.String()+": the outcome") {
			t.Errorf("sync --wait, %s: exit %d, want %d\n%s%s", result, code, want, out, errOut)
		}
	}
}

// gitorc join takes its token from --token, --token-file or standard input.
func TestJoinToken(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("GTRC-1-abc-def\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token, file, stdin, want, wantErr string
	}{
		{name: "flag", token: "GTRC-1-abc-def", want: "GTRC-1-abc-def"},
		{name: "file", file: file, want: "GTRC-1-abc-def"},
		{name: "stdin", file: "-", stdin: "GTRC-1-abc-def\n", want: "GTRC-1-abc-def"},
		{name: "both", token: "x", file: file, wantErr: "give one"},
		{name: "none", wantErr: "--token-file"},
		{name: "empty stdin", file: "-", wantErr: "empty"},
		{name: "missing file", file: file + ".no", wantErr: "no such file"},
	} {
		got, err := joinToken(tc.token, tc.file, strings.NewReader(tc.stdin))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %q %v, want error %q", tc.name, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.name, got, err, tc.want)
		}
	}
}

// A misused gitorc diff exits 2, an error, never 1, which a script reads
// as "differences": both --revision and --local, an unknown flag, an
// argument. Nothing is sent (no daemon listens at the socket).
func TestDiffMisuseIsAnError(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{
		{"--revision", "main", "--local", "."},
		{"--no-such-flag"},
		{"extra"},
	} {
		_, errOut, code := run(t, append([]string{"diff", "--socket", socket}, args...)...)
		if code != diffError || strings.Contains(errOut, "cannot reach") {
			t.Errorf("diff %v: exit %d %s, want %d before any call", args, code, errOut, diffError)
		}
	}
}
