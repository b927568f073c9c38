package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/e2e/gitopsenv"
)

// gitorc events, as an operator watches a push: the sync starting and
// finishing, then a task of the pushed revision failing (its process is
// told to exit 3).
func TestEventsOfAPush_Root(t *testing.T) {
	requireE2E(t)
	bin := buildGitorc(t)
	env := gitopsenv.Start(t, gitopsenv.Options{Hosts: 1, Bin: bin, Interval: time.Hour, Secret: "e2e-hook"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--socket", env.Socket, "events", "-o", "json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	events := make(chan controlapi.Event, 256)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e controlapi.Event
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				events <- e
			}
		}
	}()
	// The stream is up once it carries a change: a first commit.
	stack := fmt.Sprintf(`services:
  crash:
    image: %s/gitorc/busybox:1
    command: ["sh", "-c", "while [ ! -f /tmp/die ]; do sleep 0.1; done; exit 3"]
    stop_grace_period: 1s
    deploy:
      replicas: 1
`, env.Reg.Addr)
	rev, err := env.Repo.Commit("main", "a service that crashes when told", map[string]string{"stacks/app/compose.yaml": stack})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := env.Gitorc("sync"); err != nil {
		t.Fatalf("sync: %v\n%s", err, out)
	}
	var started, finished, failed, told bool
	var seen []string
	for !(started && finished && failed) {
		if started && finished && !told {
			told = true
			tasks, err := env.Tasks(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range tasks {
				if x.ServiceName == "app_crash" && x.Status.State.String() == "running" {
					if out, err := env.Exec(ctx, x.Task, "touch", "/tmp/die"); err != nil {
						t.Fatalf("exec: %v %s", err, out)
					}
				}
			}
		}
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("the event stream ended: %q", seen)
			}
			seen = append(seen, e.Type+" "+e.Action+" "+e.Name+" "+e.State)
			switch {
			case e.Type == controlapi.EventSync && e.Action == "started" && e.Revision == rev:
				started = true
			case e.Type == controlapi.EventSync && e.Action == "finished" && e.Revision == rev:
				finished = true
			case told && e.Type == controlapi.EventTask && e.Service == "app_crash" && e.State == "failed" && strings.Contains(e.Message, "exit"):
				failed = true
			}
		case <-ctx.Done():
			t.Fatalf("events: sync started %v, finished %v, task failed %v; seen %q", started, finished, failed, seen)
		}
	}
}
