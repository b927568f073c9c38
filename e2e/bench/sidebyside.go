package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The side-by-side suite (-suite swarm) runs the same steps on a
// single-node gitorc cluster and on a single-node Docker Swarm, in
// alternating rounds with one system running at a time, and prints the
// medians of both and their ratio. Each step is timed from just before the
// command (a stack deploy through the system's own CLI, a scale, a kill
// of a task's container) until the state it waits for is first observed
// through the system's API, polled every -poll.

// system is one orchestrator under test, already running.
type system interface {
	name() string
	// image is the reference of one of the suite's images: web1, web2, bad.
	image(which string) string
	// header starts every stack file (Swarm's CLI wants a version).
	header() string
	deploy(ctx context.Context, stack, file string) error
	scale(ctx context.Context, service string, replicas int) error
	// killOne SIGKILLs the main process of one running task of the
	// service and returns the task's ID.
	killOne(ctx context.Context, service string) (string, error)
	rm(ctx context.Context, stack string) error
	// observe is one poll of a service: an update counts only if it
	// started at or after since.
	observe(ctx context.Context, service string, since time.Time) (observation, error)
	// gone reports whether the stack's service, its tasks' containers and
	// its default network are all gone.
	gone(ctx context.Context, stack, service string) (bool, error)
	memory() (memory, error)
	// daemons are the PIDs of the orchestrator's daemon and its containerd,
	// whose CPU time each step reports.
	daemons() []int
	// logFiles are the daemons' logs, for -keep-logs.
	logFiles() []string
	// stop tears everything down that the system started.
	stop() error
}

// observation is what one poll saw of a service.
type observation struct {
	exists bool
	update string // state of an update started since the step began; "" if none
	vip    string // the service's virtual IP on its network, if it has one
	tasks  []taskObs
}

type taskObs struct {
	id             string
	image          string
	desiredRunning bool
	running        bool // the task's state is running
	live           bool // the task has not ended (and is not about to)
}

// want is what a step waits for; every condition set must be met.
type want struct {
	running int    // that many tasks desired and running (0: not waited for)
	image   string // … on this image (every other live task wanted running blocks it)
	exclude string // a task ID not to count
	update  string // the service's update state
	gate    bool   // count tasks only once a rollback has started
	gone    bool   // service, containers and network gone
}

// Condition names, as met() reports them.
const (
	condRunning = "running"
	condUpdate  = "update"
	condGate    = "rollback_started"
	condGone    = "gone"
	// condSvcGone is when the service itself is gone, on the way to
	// condGone: shown, not waited for.
	condSvcGone = "service gone"
)

// runningMet reports whether an observation has want.running tasks of
// want.image running and wanted running, and no other live task wanted
// running on another image. A task that failed stays in the list as
// history (on gitorc it may keep desired=running); only live ones block.
func runningMet(o observation, w want) bool {
	ok, other := 0, 0
	for _, t := range o.tasks {
		if t.id == w.exclude || !t.desiredRunning {
			continue
		}
		if w.image != "" && !sameImage(t.image, w.image) {
			if t.live {
				other++
			}
			continue
		}
		if t.running {
			ok++
		}
	}
	return ok == w.running && other == 0
}

// sameImage compares references without a digest.
func sameImage(a, b string) bool {
	a, _, _ = strings.Cut(a, "@")
	b, _, _ = strings.Cut(b, "@")
	return a == b
}

// rollbackState reports whether an update state says a rollback has
// started: a poll may miss rollback_started and see a later state.
func rollbackState(s string) bool { return strings.HasPrefix(s, "rollback_") }

// tracker records when each condition of a want is first met, poll by
// poll, from the step's start.
type tracker struct {
	w     want
	start time.Time
	met   map[string]time.Duration
	gated bool
}

func newTracker(w want, start time.Time) *tracker {
	return &tracker{w: w, start: start, met: map[string]time.Duration{}, gated: !w.gate}
}

// conds lists the conditions the want sets.
func (tr *tracker) conds() []string {
	var c []string
	if tr.w.gate {
		c = append(c, condGate)
	}
	if tr.w.running > 0 {
		c = append(c, condRunning)
	}
	if tr.w.update != "" {
		c = append(c, condUpdate)
	}
	if tr.w.gone {
		c = append(c, condGone)
	}
	return c
}

// see records an observation made at time at; gone is the system's
// answer for the stack (ignored unless the want asks for it).
func (tr *tracker) see(o observation, gone bool, at time.Time) {
	mark := func(c string) {
		if _, ok := tr.met[c]; !ok {
			tr.met[c] = at.Sub(tr.start)
		}
	}
	if tr.w.gate && !tr.gated && rollbackState(o.update) {
		tr.gated = true
		mark(condGate)
	}
	if tr.w.running > 0 && o.exists && tr.gated && runningMet(o, tr.w) {
		mark(condRunning)
	}
	if tr.w.update != "" && o.exists && o.update == tr.w.update {
		mark(condUpdate)
	}
	if tr.w.gone && !o.exists {
		mark(condSvcGone)
	}
	if tr.w.gone && gone {
		mark(condGone)
	}
}

// done reports whether every condition is met.
func (tr *tracker) done() bool {
	for _, c := range tr.conds() {
		if _, ok := tr.met[c]; !ok {
			return false
		}
	}
	return true
}

// suite runs the steps on systems and collects the figures.
type suite struct {
	poll, settle, timeout time.Duration
	log                   io.Writer
	results               *results
	keepLogs              string // copy the daemons' logs here after each round
	profileDir            string // profiles of some steps (profile.go)
	roundNo               int    // the round running, for profileDir
}

// keep copies a round's logs to keepLogs/<system>-r<round>/.
func (s *suite) keep(sys system, round int) {
	if s.keepLogs == "" {
		return
	}
	dir := filepath.Join(s.keepLogs, fmt.Sprintf("%s-r%d", sys.name(), round))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(s.log, "keep logs:", err)
		return
	}
	for _, f := range sys.logFiles() {
		if b, err := os.ReadFile(f); err == nil {
			_ = os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644)
		}
	}
}

// errStep is a step that did not reach its state in time.
var errStep = errors.New("step timed out")

// wait polls the system until the want holds, from start.
func (s *suite) wait(ctx context.Context, sys system, stack, service string, start time.Time, w want) (map[string]time.Duration, error) {
	tr := newTracker(w, start)
	deadline := time.Now().Add(s.timeout)
	var last observation
	for {
		at := time.Now()
		o, err := sys.observe(ctx, service, start)
		if err != nil {
			return tr.met, err
		}
		last = o
		gone := false
		if w.gone && !o.exists {
			if gone, err = sys.gone(ctx, stack, service); err != nil {
				return tr.met, err
			}
		}
		tr.see(o, gone, at)
		if tr.done() {
			return tr.met, nil
		}
		if time.Now().After(deadline) {
			return tr.met, fmt.Errorf("%w after %s: %s; met %v; last poll: %s", errStep, s.timeout, sys.name(), tr.met, summary(last))
		}
		select {
		case <-ctx.Done():
			return tr.met, ctx.Err()
		case <-time.After(s.poll):
		}
	}
}

// summary counts an observation's tasks by image, desired and state.
func summary(o observation) string {
	if !o.exists {
		return "no service"
	}
	n := map[string]int{}
	for _, t := range o.tasks {
		state := "ended"
		switch {
		case t.running:
			state = "running"
		case t.live:
			state = "live"
		}
		n[fmt.Sprintf("%s desired=%v %s", t.image, t.desiredRunning, state)]++
	}
	var parts []string
	for k, v := range n {
		parts = append(parts, fmt.Sprintf("%d× %s", v, k))
	}
	slices.Sort(parts)
	return fmt.Sprintf("update %q; %s", o.update, strings.Join(parts, ", "))
}

// stackFile is the suite's stack: one service, web, with Swarm's update
// settings of the issue (parallelism 2, delay 0, monitor 5s).
func stackFile(header, image string, replicas int, order, failureAction, restartDelay string) string {
	var b strings.Builder
	b.WriteString(header)
	fmt.Fprintf(&b, `services:
  web:
    image: %s
    deploy:
      replicas: %d
      update_config:
        parallelism: 2
        delay: 0s
        order: %s
        failure_action: %s
        monitor: 5s
      restart_policy:
        condition: any
`, image, replicas, order, failureAction)
	if restartDelay != "" {
		fmt.Fprintf(&b, "        delay: %s\n", restartDelay)
	}
	return b.String()
}

// Step labels: the table's rows, in order.
const (
	rowDeploy10      = "deploy 10 → running"
	rowDeploy50      = "deploy 50 → running"
	rowScale         = "scale 10 → 50 → running"
	rowStopFirst     = "stop-first update (par 2) → all new running"
	rowStopFirstDone = "stop-first update → update completed"
	rowStartFirst    = "start-first update → all new running"
	rowStartDone     = "start-first update → update completed"
	rowBadGate       = "bad image, rollback → rollback started"
	rowBadOld        = "bad image, rollback → 10 on the old image"
	rowBadDone       = "bad image, rollback → rollback completed"
	rowKill          = "kill one task → replacement running (delay 0)"
	rowRm50          = "stack rm 50 → tasks and network gone"
	rowMemory        = "resident memory at 50 tasks (RSS)"
	rowMemoryPSS     = "resident memory at 50 tasks (PSS)"
)

var rows = []string{rowDeploy10, rowDeploy50, rowScale, rowStopFirst, rowStopFirstDone, rowStartFirst, rowStartDone,
	rowBadGate, rowBadOld, rowBadDone, rowKill, rowRm50, rowMemory, rowMemoryPSS}

// round runs every step once on a system. The stacks are s10 (deployed
// with 10 replicas, updated, rolled back, killed into, scaled to 50) and
// s50 (deployed with 50). An error ends the round: the next steps would
// start from an unknown state.
func (s *suite) round(ctx context.Context, sys system, dir string) error {
	const n, big = 10, 50
	web1, web2, bad := sys.image("web1"), sys.image("web2"), sys.image("bad")
	file := func(name, image string, replicas int, order, action, delay string) (string, error) {
		path := dir + "/" + name + ".yaml"
		return path, os.WriteFile(path, []byte(stackFile(sys.header(), image, replicas, order, action, delay)), 0o644)
	}
	type step struct {
		label   string // "" for an unmeasured step (a reset between measured ones)
		do      func() error
		stack   string
		service string
		w       want
		rows    map[string]string // condition → row
		after   func() error
	}
	var killed string
	deploy := func(stack, name, image string, replicas int, order, action, delay string) func() error {
		return func() error {
			f, err := file(name, image, replicas, order, action, delay)
			if err != nil {
				return err
			}
			return sys.deploy(ctx, stack, f)
		}
	}
	memAt := func() error {
		m, err := sys.memory()
		if err != nil {
			return err
		}
		s.results.addMemory(sys.name(), m)
		fmt.Fprintf(s.log, "  resident memory at 50 tasks: %s\n", m)
		return nil
	}
	steps := []step{
		{label: rowDeploy10, do: deploy("s10", "a", web1, n, "stop-first", "pause", ""), stack: "s10", service: "s10_web",
			w: want{running: n, image: web1}, rows: map[string]string{condRunning: rowDeploy10},
			after: func() error { return s.checkVIP(ctx, sys, "s10_web") }},
		{label: rowStopFirst, do: deploy("s10", "c1", web2, n, "stop-first", "pause", ""), stack: "s10", service: "s10_web",
			w: want{running: n, image: web2, update: "completed"}, rows: map[string]string{condRunning: rowStopFirst, condUpdate: rowStopFirstDone}},
		{do: deploy("s10", "c2p", web1, n, "start-first", "pause", ""), stack: "s10", service: "s10_web",
			w: want{running: n, image: web1, update: "completed"}},
		{label: rowStartFirst, do: deploy("s10", "c2", web2, n, "start-first", "pause", ""), stack: "s10", service: "s10_web",
			w: want{running: n, image: web2, update: "completed"}, rows: map[string]string{condRunning: rowStartFirst, condUpdate: rowStartDone}},
		{do: deploy("s10", "dp", web1, n, "stop-first", "rollback", ""), stack: "s10", service: "s10_web",
			w: want{running: n, image: web1, update: "completed"}},
		{label: rowBadOld, do: deploy("s10", "d", bad, n, "stop-first", "rollback", ""), stack: "s10", service: "s10_web",
			w:    want{gate: true, running: n, image: web1, update: "rollback_completed"},
			rows: map[string]string{condGate: rowBadGate, condRunning: rowBadOld, condUpdate: rowBadDone}},
		// The restart delay goes to 0 through the stack file, for both
		// systems (a rolling update of its own, not measured).
		{do: deploy("s10", "f0", web1, n, "stop-first", "rollback", "0s"), stack: "s10", service: "s10_web",
			w: want{running: n, image: web1, update: "completed"}},
		{label: rowKill, do: func() (err error) { killed, err = sys.killOne(ctx, "s10_web"); return err }, stack: "s10", service: "s10_web",
			w: want{running: n, image: web1}, rows: map[string]string{condRunning: rowKill}},
		{label: rowScale, do: func() error { return sys.scale(ctx, "s10_web", big) }, stack: "s10", service: "s10_web",
			w: want{running: big, image: web1}, rows: map[string]string{condRunning: rowScale}},
		{do: func() error { return sys.rm(ctx, "s10") }, stack: "s10", service: "s10_web", w: want{gone: true}},
		{label: rowDeploy50, do: deploy("s50", "b", web1, big, "stop-first", "pause", ""), stack: "s50", service: "s50_web",
			w: want{running: big, image: web1}, rows: map[string]string{condRunning: rowDeploy50}, after: memAt},
		{label: rowRm50, do: func() error { return sys.rm(ctx, "s50") }, stack: "s50", service: "s50_web",
			w: want{gone: true}, rows: map[string]string{condGone: rowRm50}},
	}
	for _, st := range steps {
		w := st.w
		pids := sys.daemons()
		cpu0 := cpuTime(pids)
		profiled := s.startProfile(ctx, sys, s.roundNo, st.label)
		start := time.Now()
		if err := st.do(); err != nil {
			return fmt.Errorf("%s: %s: %w", sys.name(), orReset(st.label), err)
		}
		if st.label == rowKill {
			w.exclude = killed // known only once killed
		}
		met, err := s.wait(ctx, sys, st.stack, st.service, start, w)
		for c, row := range st.rows {
			if d, ok := met[c]; ok {
				s.results.add(sys.name(), row, d)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %s: %w", sys.name(), orReset(st.label), err)
		}
		if st.label != "" {
			cpu := cpuTime(pids) - cpu0
			s.results.addCPU(sys.name(), st.label, cpu)
			var parts []string
			for _, c := range []string{condGate, condRunning, condUpdate, condSvcGone, condGone} {
				if d, ok := met[c]; ok {
					parts = append(parts, fmt.Sprintf("%s %.2fs", c, d.Seconds()))
				}
			}
			fmt.Fprintf(s.log, "  %-48s %s (daemon and containerd CPU %.2fs)\n", st.label, strings.Join(parts, ", "), cpu.Seconds())
		}
		if st.after != nil {
			if err := st.after(); err != nil {
				return fmt.Errorf("%s: after %s: %w", sys.name(), orReset(st.label), err)
			}
		}
		// Let the system settle: stopped containers are reaped, the
		// daemons go idle, before the next step's clock starts.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.settle):
		}
		profiled()
	}
	return nil
}

func orReset(label string) string {
	if label == "" {
		return "reset step"
	}
	return label
}

// checkVIP makes sure the service sits on an overlay network with a
// virtual IP, as the comparison assumes for both systems.
func (s *suite) checkVIP(ctx context.Context, sys system, service string) error {
	o, err := sys.observe(ctx, service, time.Now())
	if err != nil {
		return err
	}
	if o.vip == "" {
		return fmt.Errorf("service %s has no VIP: the comparison needs its network plane on", service)
	}
	fmt.Fprintf(s.log, "  %s has VIP %s on its stack's overlay network\n", service, o.vip)
	return nil
}
