package main

// What the CLI alone does with the GitOps answers: how gitorc status and
// gitorc source set print them, and the flags source set parses before it
// sends anything. The node's tests (cluster/node: gitops_test.go) check
// the answers themselves.

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/spf13/cobra"
)

// statusText is what gitorc status prints of rep (without rollouts and
// nodes), at a fixed time.
func statusText(t *testing.T, rep controlapi.SyncReport) string {
	t.Helper()
	at := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	defer func(f func() time.Time) { now = f }(now)
	now = func() time.Time { return at }
	var out bytes.Buffer
	cmd := &cobra.Command{}
	cmd.SetOut(&out)
	if err := printStatus(cmd, rep); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func wantIn(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("%s lacks %q:\n%s", what, want, out)
		}
	}
}

// A source that cannot be used: status prints the failed phase and why.
func TestPrintStatusFailedSource(t *testing.T) {
	out := statusText(t, controlapi.SyncReport{State: api.SyncState{
		Source: api.SourceSpec{URL: "ftp://git.invalid/stacks.git", Interval: api.Duration(time.Minute)},
		Phase:  api.SyncFailed, Message: `the Git source cannot be used: url "ftp://git.invalid/stacks.git": unsupported scheme`,
	}})
	wantIn(t, "status", out, "sync:       failed\n", "message:    the Git source cannot be used:")
}

// Webhooks: status says the secret is set and where this manager serves
// them, and lists the deliveries with their HTTP status and outcome.
func TestPrintStatusWebhooks(t *testing.T) {
	at := time.Date(2026, 3, 4, 9, 59, 0, 0, time.UTC)
	out := statusText(t, controlapi.SyncReport{
		State: api.SyncState{Source: api.SourceSpec{URL: "https://git.example.com/stacks.git", Ref: "main"}, Phase: api.SyncSynced,
			Deliveries: []api.WebhookDelivery{
				{At: at, Provider: "github", Status: 401, Outcome: "github webhook: signature mismatch; nothing changed"},
				{At: at, Provider: "github", Event: "push", Status: 202, Outcome: "ignored: push to branch dev (source follows main)"},
			}},
		Webhook: controlapi.WebhookReport{SecretSet: true, Listen: "127.0.0.1:9999"},
	})
	wantIn(t, "status", out,
		"webhook:    secret set; this manager serves POST /hooks/{github,gitlab,gitea,generic} on 127.0.0.1:9999\n",
		"deliveries:\n", "401 github webhook: signature mismatch", "202 ignored: push to branch dev")
	if off := statusText(t, controlapi.SyncReport{}); !strings.Contains(off, "webhook:    off (") {
		t.Errorf("status without webhooks:\n%s", off)
	}
}

// Suspended: status says so on the sync line.
func TestPrintStatusSuspended(t *testing.T) {
	out := statusText(t, controlapi.SyncReport{State: api.SyncState{Phase: api.SyncSynced, Suspended: true}})
	wantIn(t, "status", out, "sync:       synced (suspended: no automatic syncs")
	if out := statusText(t, controlapi.SyncReport{State: api.SyncState{Phase: api.SyncSynced}}); strings.Contains(out, "suspended") {
		t.Errorf("status of a cluster not suspended:\n%s", out)
	}
}

// A deny window that is closed now and a webhook's request waiting for
// it: status says the window is closed and shows the request.
func TestPrintStatusDenyWindow(t *testing.T) {
	at := time.Date(2026, 3, 4, 9, 59, 0, 0, time.UTC)
	out := statusText(t, controlapi.SyncReport{State: api.SyncState{
		Source: api.SourceSpec{URL: "https://git.example.com/stacks.git", Ref: "main",
			Windows: []api.SyncWindow{{Kind: "deny", Schedule: "* * * * *", Duration: api.Duration(time.Hour)}}},
		Phase:    api.SyncSynced,
		Requests: []api.SyncRequest{{ID: "r1", Trigger: api.TriggerWebhook, At: at}},
	}})
	wantIn(t, "status", out, "windows:    deny * * * * * 1h0m0s\n", "sync window closed", "request:    webhook r1 pending")
}

// A webhook's request for a commit the source does not show yet: status
// prints the request's message once it was tried.
func TestPrintStatusWaitingRequest(t *testing.T) {
	at := time.Date(2026, 3, 4, 9, 59, 0, 0, time.UTC)
	out := statusText(t, controlapi.SyncReport{State: api.SyncState{Phase: api.SyncSynced,
		Requests: []api.SyncRequest{{ID: "r2", Trigger: api.TriggerWebhook, At: at, Attempts: 1,
			Message: "the source does not show abc1234 yet"}}}})
	wantIn(t, "status", out, "request:    webhook r2 pending", ": the source does not show abc1234 yet")
}

// gitorc source set prints the source followed: its windows, and whether
// the webhook secret is set.
func TestPrintSourceWindowsAndSecret(t *testing.T) {
	var out bytes.Buffer
	printSource(&out, controlapi.SourceReport{Source: api.SourceSpec{URL: "https://git.example.com/stacks.git", Ref: "main",
		Interval: api.Duration(time.Hour), Revert: "auto",
		Windows: []api.SyncWindow{{Kind: "deny", Schedule: "* * * * *", Duration: api.Duration(time.Hour)}}}, WebhookSecretSet: true})
	wantIn(t, "source set", out.String(), "window:     deny * * * * * 1h0m0s\n", "webhook secret: set\n")
	out.Reset()
	printSource(&out, controlapi.SourceReport{Source: api.SourceSpec{URL: "https://git.example.com/stacks.git"}})
	if s := out.String(); strings.Contains(s, "window:") || !strings.Contains(s, "webhook secret: none (webhooks are refused)") {
		t.Errorf("source set without windows or secret:\n%s", s)
	}
}

// gitorc source set parses --window before it sends anything: a window
// without a duration fails with the flag's name; the webhook secret file
// is read trimmed.
func TestSourceSetFlags(t *testing.T) {
	t.Setenv("GITORC_SOCKET", filepath.Join(t.TempDir(), "none.sock")) // nothing is sent
	_, errOut, code := run(t, "source", "set", "--window", "deny 0 22 * * 5")
	if code != 1 || !strings.Contains(errOut, "--window: sync window") {
		t.Errorf("bad window: exit %d: %s", code, errOut)
	}
	_, errOut, code = run(t, "source", "set", "--window", "deny * * * * * 1h", "--no-windows")
	if code != 1 || !strings.Contains(errOut, "--no-windows and --window: give one") {
		t.Errorf("--window with --no-windows: exit %d: %s", code, errOut)
	}
	keyFile := filepath.Join(t.TempDir(), "hook.secret")
	if err := os.WriteFile(keyFile, []byte("n3w-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := webhookSecretFrom(func() ([]byte, error) { return os.ReadFile(keyFile) }); err != nil || s != "n3w-secret" {
		t.Errorf("webhook secret from %s: %q %v", keyFile, s, err)
	}
}
