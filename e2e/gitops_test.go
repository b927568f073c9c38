package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/e2e/gitopsenv"
	"github.com/gitorc/gitorc/e2e/gitserver"
)

// gitopsStatus is the part of gitorc status -o json this test reads.
type gitopsStatus struct {
	State struct {
		Phase    string `json:"phase"`
		Revision string `json:"revision"`
	} `json:"state"`
	History []struct {
		Revision string `json:"revision"`
		Trigger  string `json:"trigger"`
		Result   string `json:"result"`
		Request  string `json:"request"`
	} `json:"history"`
}

// The user's story of a Git-driven cluster, with the real binary and a
// real git http-backend: a push announced by a signed webhook deploys; a
// delivery with a bad signature is refused and changes nothing; with a
// short poll interval, a push nobody announces deploys too; a commit
// removing the stack prunes it.
func TestGitOpsWebhookAndPoll_Root(t *testing.T) {
	requireE2E(t)
	const secret = "e2e-hook-secret"
	env := gitopsenv.Start(t, gitopsenv.Options{Hosts: 2, Bin: buildGitorc(t), Interval: time.Hour, Secret: secret})
	ctx := context.Background()
	status := func() gitopsStatus {
		var st gitopsStatus
		out, err := env.Gitorc("status", "-o", "json")
		if err == nil {
			_ = json.Unmarshal([]byte(out), &st)
		}
		return st
	}
	running := func(service string) uint64 {
		svcs, err := env.Services(ctx)
		if err != nil {
			return 0
		}
		return svcs[service].Running
	}

	// A push announced by the webhook deploys.
	c1, err := env.Repo.Commit("main", "web: 3 replicas", map[string]string{"stacks/app/compose.yaml": env.Stack("web", 3, "1")})
	if err != nil {
		t.Fatal(err)
	}
	code, msg, err := gitserver.Deliver(ctx, env.HookURL, []byte(secret), "main", c1)
	if err != nil || code != http.StatusAccepted || msg != "sync queued for main at "+c1[:7] {
		t.Fatalf("webhook: %d %q %v", code, msg, err)
	}
	env.WaitFor("the pushed stack to run", 120*time.Second, func() bool {
		st := status()
		return running("app_web") == 3 && st.State.Revision == c1 && st.State.Phase == "synced"
	})
	st := status()
	if last := st.History[len(st.History)-1]; last.Revision != c1 || last.Trigger != "webhook" || last.Request == "" {
		t.Errorf("the deploy is not recorded as the webhook's: %+v", last)
	}

	// A bad signature: 401, and nothing changes.
	c2, err := env.Repo.Commit("main", "web: 4 replicas", map[string]string{"stacks/app/compose.yaml": env.Stack("web", 4, "1")})
	if err != nil {
		t.Fatal(err)
	}
	code, msg, err = gitserver.Deliver(ctx, env.HookURL, []byte("not-the-secret"), "main", c2)
	if err != nil || code != http.StatusUnauthorized || !strings.HasSuffix(msg, "nothing changed") {
		t.Fatalf("bad signature: %d %q %v", code, msg, err)
	}
	if st := status(); st.State.Revision != c1 || running("app_web") != 3 {
		t.Fatalf("a refused delivery changed the cluster: %+v", st.State)
	}

	// Polling: a short interval finds the push nobody announced.
	if out, err := env.Gitorc("source", "set", "--interval", "2s"); err != nil {
		t.Fatalf("source set --interval: %v\n%s", err, out)
	}
	env.WaitFor("the unannounced push to run", 120*time.Second, func() bool {
		st := status()
		return running("app_web") == 4 && st.State.Revision == c2 && st.State.Phase == "synced"
	})
	st = status()
	if last := st.History[len(st.History)-1]; last.Revision != c2 || last.Trigger != "poll" {
		t.Errorf("the second deploy is not recorded as a poll's: %+v", last)
	}

	// A commit without the stack prunes it.
	if _, err := env.Repo.Commit("main", "remove app", map[string]string{"stacks": ""}); err != nil {
		t.Fatal(err)
	}
	if out, err := env.Gitorc("sync", "--wait", "--timeout", "120s"); err != nil || !strings.Contains(out, "synced") {
		t.Fatalf("sync --wait: %v\n%s", err, out)
	}
	env.WaitFor("the removed stack to be pruned", 60*time.Second, func() bool {
		svcs, err := env.Services(ctx)
		return err == nil && len(svcs) == 0
	})
}
