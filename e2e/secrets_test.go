package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/e2e/gitopsenv"
)

// rotationStack is a service of 3 replicas reading a sealed secret, whose
// healthcheck fails when the secret holds "bad"; it rolls one task at a
// time, start-first, and rolls back when a new task fails.
func rotationStack(reg string) string {
	return fmt.Sprintf(`services:
  web:
    image: %s/gitorc/busybox:1
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    secrets: [pw]
    healthcheck:
      test: ["CMD-SHELL", "! grep -q bad /run/secrets/pw"]
      interval: 1s
      timeout: 2s
      retries: 1
    deploy:
      replicas: 3
      update_config:
        parallelism: 1
        order: start-first
        monitor: 2s
        failure_action: rollback
secrets:
  pw:
    file: ./pw.age
`, reg)
}

// A commit that changes a sealed secret rolls the tasks of the service
// that uses it, start-first and health-gated; every task then reads the
// new content and the earlier version leaves the store. A commit whose
// secret fails the healthcheck is reverted: the tasks read the content
// they had again.
func TestSecretRotationRolls_Root(t *testing.T) {
	requireE2E(t)
	bin := buildGitorc(t)
	env := gitopsenv.Start(t, gitopsenv.Options{Hosts: 2, Bin: bin, Interval: time.Hour, Secret: "e2e-hook"})
	ctx := context.Background()
	recipient, err := os.ReadFile(filepath.Join(env.DataDir(1), "recipient.txt"))
	if err != nil {
		t.Fatal(err)
	}
	seal := func(plain string) string {
		t.Helper()
		out := filepath.Join(t.TempDir(), "pw.age")
		cmd := exec.Command(bin, "seal", "--recipient", strings.TrimSpace(string(recipient)), "-o", out)
		cmd.Stdin = strings.NewReader(plain)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("seal: %v\n%s", err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	push := func(msg, plain string) string {
		t.Helper()
		c, err := env.Repo.Commit("main", msg, map[string]string{
			"stacks/app/compose.yaml": rotationStack(env.Reg.Addr), "stacks/app/pw.age": seal(plain)})
		if err != nil {
			t.Fatal(err)
		}
		if out, err := env.Gitorc("sync"); err != nil {
			t.Fatalf("sync: %v\n%s", err, out)
		}
		return c
	}
	live := func() []controlapi.Task {
		ts, err := env.Tasks(ctx)
		if err != nil {
			return nil
		}
		var out []controlapi.Task
		for _, x := range ts {
			if x.ServiceName == "app_web" && x.DesiredState == api.TaskRunning && x.Status.State == api.TaskRunning && x.Status.Health == api.HealthHealthy {
				out = append(out, x)
			}
		}
		return out
	}
	// contents is what each live task reads, by task ID.
	contents := func(ts []controlapi.Task) map[string]string {
		out := map[string]string{}
		for _, x := range ts {
			b, err := env.Exec(ctx, x.Task, "cat", "/run/secrets/pw")
			if err != nil {
				b = "error: " + err.Error() + ": " + b
			}
			out[x.ID] = b
		}
		return out
	}
	allRead := func(ts []controlapi.Task, want string) bool {
		for _, got := range contents(ts) {
			if got != want {
				return false
			}
		}
		return len(ts) == 3
	}
	synced := func(rev string) bool {
		s, err := env.Sync(ctx)
		return err == nil && s.Phase == api.SyncSynced && s.Revision == rev
	}
	versions := func() []controlapi.FileObject {
		out, err := env.Gitorc("secret", "ls", "-o", "json")
		var objs []controlapi.FileObject
		if err != nil || json.Unmarshal([]byte(out), &objs) != nil {
			return nil
		}
		return slices.DeleteFunc(objs, func(o controlapi.FileObject) bool { return o.Name != "app_pw" })
	}

	c1 := push("pw one", "pw-one")
	env.WaitFor("3 healthy tasks reading pw-one", 120*time.Second, func() bool { return synced(c1) && allRead(live(), "pw-one") })
	first := live()

	// Rotation: every task replaced, each reading the new content; then
	// only the new version is left.
	c2 := push("pw two", "pw-two")
	env.WaitFor("3 new tasks reading pw-two", 120*time.Second, func() bool {
		ts := live()
		for _, x := range ts {
			if slices.ContainsFunc(first, func(f controlapi.Task) bool { return f.ID == x.ID }) {
				return false
			}
		}
		return synced(c2) && allRead(ts, "pw-two")
	})
	env.WaitFor("the earlier version gone", 60*time.Second, func() bool {
		vs := versions()
		return len(vs) == 1 && vs[0].VersionOf == "" && vs[0].Tasks == 3
	})

	// A secret that fails the healthcheck: the rollout rolls back, the
	// commit is reverted, and the tasks read pw-two again.
	c3 := push("pw bad", "pw-bad")
	env.WaitFor("the bad commit failed and reverted", 180*time.Second, func() bool {
		s, err := env.Sync(ctx)
		return err == nil && slices.Contains(s.FailedRevisions, c3) && s.LastGoodRevision == c2 && s.InFlight == nil && allRead(live(), "pw-two")
	})
	if h, err := env.Gitorc("history"); err != nil || !strings.Contains(h, "revert") {
		t.Errorf("history does not show the revert: %v\n%s", err, h)
	}
}
