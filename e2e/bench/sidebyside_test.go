package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRunningMet(t *testing.T) {
	run := func(id, image string) taskObs {
		return taskObs{id: id, image: image, desiredRunning: true, running: true, live: true}
	}
	failed := func(id, image string) taskObs { // gitorc keeps a failed task wanted running
		return taskObs{id: id, image: image, desiredRunning: true}
	}
	starting := func(id, image string) taskObs {
		return taskObs{id: id, image: image, desiredRunning: true, live: true}
	}
	stopping := func(id, image string) taskObs {
		return taskObs{id: id, image: image, running: true, live: true}
	}
	for _, tc := range []struct {
		name  string
		tasks []taskObs
		w     want
		met   bool
	}{
		{"all running", []taskObs{run("a", "w:1"), run("b", "w:1")}, want{running: 2, image: "w:1"}, true},
		{"one short", []taskObs{run("a", "w:1"), starting("b", "w:1")}, want{running: 2, image: "w:1"}, false},
		{"too many", []taskObs{run("a", "w:1"), run("b", "w:1"), run("c", "w:1")}, want{running: 2, image: "w:1"}, false},
		{"a live task of another image blocks", []taskObs{run("a", "w:2"), run("b", "w:2"), starting("c", "w:1")},
			want{running: 2, image: "w:2"}, false},
		{"an old task being stopped does not", []taskObs{run("a", "w:2"), run("b", "w:2"), stopping("c", "w:1")},
			want{running: 2, image: "w:2"}, true},
		{"a failed task of the bad image does not", []taskObs{run("a", "w:1"), run("b", "w:1"), failed("c", "bad:1")},
			want{running: 2, image: "w:1"}, true},
		{"the killed task is not counted", []taskObs{run("a", "w:1"), run("b", "w:1")},
			want{running: 2, image: "w:1", exclude: "b"}, false},
		{"a digest does not make another image", []taskObs{run("a", "w:1@sha256:00"), run("b", "w:1")},
			want{running: 2, image: "w:1"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := runningMet(observation{exists: true, tasks: tc.tasks}, tc.w); got != tc.met {
				t.Errorf("runningMet = %v, want %v", got, tc.met)
			}
		})
	}
}

// A rollback step counts tasks only once the rollback started: the old
// image's tasks still running when the bad update begins do not end it.
func TestTrackerRollbackGate(t *testing.T) {
	start := time.Unix(1000, 0)
	tr := newTracker(want{gate: true, running: 2, image: "w:1", update: "rollback_completed"}, start)
	old := []taskObs{{id: "a", image: "w:1", desiredRunning: true, running: true, live: true},
		{id: "b", image: "w:1", desiredRunning: true, running: true, live: true}}
	tr.see(observation{exists: true, update: "updating", tasks: old}, false, start.Add(time.Second))
	if _, ok := tr.met[condRunning]; ok {
		t.Fatal("running counted before the rollback started")
	}
	// A poll that missed rollback_started and sees a later state opens it.
	tr.see(observation{exists: true, update: "rollback_paused", tasks: old[:1]}, false, start.Add(2*time.Second))
	tr.see(observation{exists: true, update: "rollback_started", tasks: old}, false, start.Add(3*time.Second))
	if tr.done() {
		t.Fatal("done before rollback_completed")
	}
	tr.see(observation{exists: true, update: "rollback_completed", tasks: old}, false, start.Add(4*time.Second))
	want := map[string]time.Duration{condGate: 2 * time.Second, condRunning: 3 * time.Second, condUpdate: 4 * time.Second}
	if diff := cmp.Diff(want, tr.met); diff != "" || !tr.done() {
		t.Errorf("met (-want +got):\n%s", diff)
	}
}

func TestTrackerGone(t *testing.T) {
	start := time.Unix(1000, 0)
	tr := newTracker(want{gone: true}, start)
	tr.see(observation{}, false, start.Add(time.Second)) // the service is gone, its containers not yet
	if tr.done() {
		t.Fatal("gone before the system says so")
	}
	tr.see(observation{}, true, start.Add(2*time.Second))
	if !tr.done() || tr.met[condGone] != 2*time.Second {
		t.Errorf("met %v", tr.met)
	}
}

func TestSpreadAndRatio(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want spread
		text string
	}{
		{nil, spread{}, "–"},
		{[]float64{2.5}, spread{2.5, 2.5, 2.5, 1}, "2.50 s"},
		{[]float64{3, 1, 2}, spread{2, 1, 3, 3}, "2.00 s [1.00..3.00]"},
		{[]float64{4, 1, 2, 3}, spread{2.5, 1, 4, 4}, "2.50 s [1.00..4.00]"},
	} {
		got := spreadOf(tc.in)
		if got != tc.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
		if s := got.format(" s", 2); s != tc.text {
			t.Errorf("format = %q, want %q", s, tc.text)
		}
	}
	if r := ratio(spreadOf([]float64{1}), spreadOf([]float64{4})); r != "0.25" {
		t.Errorf("ratio = %s", r)
	}
	if r := ratio(spreadOf([]float64{1}), spread{}); r != "–" {
		t.Errorf("ratio without a figure = %s", r)
	}
}

func TestTable(t *testing.T) {
	r := newResults()
	r.add("swarm", rowDeploy10, 4*time.Second)
	r.add("gitorc", rowDeploy10, time.Second)
	r.add("gitorc", rowDeploy10, 2*time.Second)
	r.addMemory("swarm", memory{groups: []memGroup{{name: "dockerd", procs: 1, rss: 100 << 10, pss: 100 << 10}, {name: "shims", procs: 50, rss: 300 << 10, pss: 50 << 10}}})
	r.addMemory("gitorc", memory{groups: []memGroup{{name: "gitorc daemon", procs: 1, rss: 40 << 10, pss: 40 << 10}, {name: "shims", procs: 1, rss: 20 << 10, pss: 20 << 10}}})
	var b bytes.Buffer
	r.addCPU("gitorc", rowDeploy10, 250*time.Millisecond)
	r.table(&b, []string{"swarm", "gitorc"})
	out := b.String()
	for _, want := range []string{
		"| step | swarm | gitorc | gitorc / swarm |",
		"| " + rowDeploy10 + " | 4.00 s | 1.50 s [1.00..2.00] | 0.38 |",
		"| " + rowDeploy50 + " | – | – | – |",
		"| " + rowMemory + " | 400 MiB | 60 MiB | 0.15 |",
		"| " + rowMemoryPSS + " | 150 MiB | 60 MiB | 0.40 |",
		"| swarm: shims | 50 | 300.0 (50.0) |",
		"| " + rowDeploy10 + " | – | 0.25 s |",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	r.table(&b, []string{"gitorc"})
	if strings.Contains(b.String(), "gitorc / swarm") {
		t.Errorf("a ratio column without Swarm:\n%s", b.String())
	}
}

func TestStackFile(t *testing.T) {
	got := stackFile("version: \"3.8\"\n", "local/web:1", 10, "start-first", "rollback", "0s")
	want := `version: "3.8"
services:
  web:
    image: local/web:1
    deploy:
      replicas: 10
      update_config:
        parallelism: 2
        delay: 0s
        order: start-first
        failure_action: rollback
        monitor: 5s
      restart_policy:
        condition: any
        delay: 0s
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stack file (-want +got):\n%s", diff)
	}
	if strings.Contains(stackFile("", "x", 1, "stop-first", "pause", ""), "delay: 0s\n        delay") {
		t.Error("a restart delay without one asked for")
	}
}

func TestParseSystems(t *testing.T) {
	got, err := parseSystems("gitorc, swarm,gitorc")
	if err != nil || !cmp.Equal(got, []string{"swarm", "gitorc"}) {
		t.Errorf("parseSystems = %v, %v; want swarm first", got, err)
	}
	if _, err := parseSystems("gitorc,nomad"); err == nil {
		t.Error("an unknown system accepted")
	}
}

func TestDockerRulesOnly(t *testing.T) {
	for l, want := range map[string]bool{
		"-A FORWARD -j DOCKER-USER":                                   true,
		"-N DOCKER-ISOLATION-STAGE-1":                                 true,
		"-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE":  true,
		"-A FORWARD -i gtrc1234 -j ACCEPT":                            false,
		"-A INPUT -p udp -m udp --dport 51820 -j ACCEPT":              false,
		"-A OUTPUT -p udp -m udp --dport 4789 -m policy --dir out -j": true,
	} {
		if got := dockerRule(l); got != want {
			t.Errorf("dockerRule(%q) = %v, want %v", l, got, want)
		}
	}
	empty := "table ip nat {\n\tchain DOCKER {\n\t}\n\tchain POSTROUTING {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t}\n}\n"
	if !emptyTable(empty) {
		t.Error("a table of empty chains is not empty")
	}
	if emptyTable(strings.Replace(empty, "policy accept;\n", "policy accept;\n\t\tip saddr 10.0.0.0/8 masquerade\n", 1)) {
		t.Error("a table with a rule is empty")
	}
}

func TestProcField(t *testing.T) {
	status := "Name:\tgitorc\nVmPeak:\t  900 kB\nVmRSS:\t   46464 kB\nRssAnon:\t 1 kB\n"
	if n, ok := field(status, "VmRSS:"); !ok || n != 46464 {
		t.Errorf("VmRSS = %d, %v", n, ok)
	}
	if _, ok := field(status, "Pss:"); ok {
		t.Error("a missing field found")
	}
}

func TestStatTicks(t *testing.T) {
	stat := "4242 (gitorc (x) y) S 1 4242 4242 0 -1 4194560 9000 0 0 0 150 25 0 0 20 0 12 0 100 1000000 11000 18446744073709551615\n"
	if n, ok := statTicks(stat); !ok || n != 175 {
		t.Errorf("statTicks = %d, %v; want 175 (utime 150 + stime 25)", n, ok)
	}
	if _, ok := statTicks("garbage"); ok {
		t.Error("garbage parsed")
	}
	self := cpuTime([]int{os.Getpid()})
	for i := 0; cpuTime([]int{os.Getpid()}) == self && i < 1e8; i++ {
	}
	if cpuTime([]int{os.Getpid()}) <= self {
		t.Error("this process's CPU time does not grow while it spins")
	}
}
