package e2e

import (
	"bufio"
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// logLineRe is gitorc logs -t: time, "name.slot@node |", the line.
var logLineRe = regexp.MustCompile(`^(\S+) (app_\w+\.\d+)@\S+ \| (.*)$`)

// gitorc logs on two hosts: every task's output, merged in time order
// with docker's prefixes, --tail and --since honoured; -f sees a task
// that starts during the follow; a task on a node that is down is said
// to be unreachable while the others still print.
func TestLogs_Root(t *testing.T) {
	c, reg := newCluster(t, 2)
	c.deployApp(`services:
  web:
    image: ` + reg + `/gitorc/busybox:1
    command: ["sh", "-c", "for i in 1 2 3 4 5; do echo \"line $$i of $$(hostname)\"; sleep 0.1; done; echo oops >&2; exec sleep 3600"]
    deploy:
      replicas: 2
      placement:
        max_replicas_per_node: 1
  other:
    image: ` + reg + `/gitorc/busybox:1
    command: ["sh", "-c", "echo \"hello from $$(hostname)\"; exec sleep 3600"]
`)
	c.waitFor("web on both nodes", 120*time.Second, func() bool {
		ts := c.liveTasks("app_web")
		return len(ts) == 2 && ts[0].NodeID != ts[1].NodeID && len(c.liveTasks("app_other")) == 1
	})
	type line struct{ time, task, text string }
	parse := func(out string) []line {
		var ls []line
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if m := logLineRe.FindStringSubmatch(l); m != nil {
				ls = append(ls, line{m[1], m[2], m[3]})
			}
		}
		return ls
	}
	var all []line
	c.waitFor("both tasks' 6 lines", 30*time.Second, func() bool {
		out, err := c.gitorc("logs", "-t", "app_web")
		all = parse(out)
		return err == nil && len(all) == 12
	})
	perTask := map[string][]string{}
	for i, l := range all {
		perTask[l.task] = append(perTask[l.task], l.text)
		if i > 0 && l.time < all[i-1].time {
			t.Errorf("line %d (%s) before the one above it (%s): not in time order", i, l.time, all[i-1].time)
		}
	}
	if len(perTask) != 2 {
		t.Fatalf("lines of %d tasks, want 2: %v", len(perTask), perTask)
	}
	for task, ls := range perTask {
		if len(ls) != 6 || !strings.HasPrefix(ls[0], "line 1 of ") || ls[5] != "oops" {
			t.Errorf("%s: %q", task, ls)
		}
	}
	out, err := c.gitorc("logs", "--tail", "2", "-t", "app_web")
	if tail := parse(out); err != nil || len(tail) != 4 {
		t.Errorf("--tail 2: %v\n%s", err, out)
	}
	if out, err := c.gitorc("logs", "--since", all[5].time, "-t", "app_web"); err != nil || len(parse(out)) == 0 || len(parse(out)) >= 12 {
		t.Errorf("--since %s: %v: %d lines\n%s", all[5].time, err, len(parse(out)), out)
	}

	// -f: a task started during the follow is followed too.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	follow := exec.CommandContext(ctx, c.bin, "--socket", c.socket, "logs", "-f", "app_other")
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = follow.Wait() }()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var seen []string
	waitLine := func(what string) {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("logs -f ended before %s: %q", what, seen)
				}
				seen = append(seen, l)
				if strings.Contains(l, what) {
					return
				}
			case <-ctx.Done():
				t.Fatalf("logs -f never showed %s: %q", what, seen)
			}
		}
	}
	waitLine("app_other.1@")
	if out, err := c.gitorc("service", "scale", "app_other=2"); err != nil {
		t.Fatalf("scale: %v %s", err, out)
	}
	waitLine("app_other.2@")

	// A node down: its task is reported, the other still prints.
	c.procs[1].Kill()
	c.waitFor("the down node's task reported", 90*time.Second, func() bool {
		out, _ := c.gitorc("logs", "app_web")
		return strings.Contains(out, "its log is not reachable") || strings.Contains(out, "no session")
	})
	out, _ = c.gitorc("logs", "app_web")
	if n := strings.Count(out, "| line "); n != 5 {
		t.Errorf("with one node down, %d lines of the other task, want 5:\n%s", n, out)
	}
}
