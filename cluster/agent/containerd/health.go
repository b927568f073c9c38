package containerd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"

	"github.com/gitorc/gitorc/cluster/api"
)

// health is a container's health verdict so far.
type health struct {
	State    api.HealthState
	Failures int // consecutive failed probes that counted
	Message  string
}

// nextHealth folds one probe result into the verdict, with Docker's rules:
// failures within the start period do not count until a probe succeeded;
// retries consecutive failures make the container unhealthy; one success
// makes it healthy again. It is pure.
func nextHealth(cur health, ok bool, output string, inStartPeriod bool, retries uint64) health {
	if ok {
		return health{State: api.HealthHealthy}
	}
	if cur.State == api.HealthStarting && inStartPeriod {
		return cur
	}
	next := cur
	next.Failures++
	if uint64(next.Failures) >= max(retries, 1) {
		next.State = api.HealthUnhealthy
		next.Message = fmt.Sprintf("unhealthy: %d consecutive failures", next.Failures)
		if out := strings.TrimSpace(output); out != "" {
			next.Message += ": " + out
		}
	}
	return next
}

// dockerHealthConfig is the healthcheck Docker and buildkit write into an
// image's config (config.Healthcheck, from a Dockerfile's HEALTHCHECK): a
// field the OCI image spec does not define. Durations are nanoseconds.
type dockerHealthConfig struct {
	Test          []string
	Interval      time.Duration
	Timeout       time.Duration
	StartPeriod   time.Duration
	StartInterval time.Duration
	Retries       int
}

// imageHealthcheck reads the healthcheck of an image's raw config blob:
// nil when the image has none or switches it off (HEALTHCHECK NONE). Its
// zero timings take the defaults when it runs, as Docker's do.
func imageHealthcheck(config []byte) (*api.Healthcheck, error) {
	var img struct {
		Config struct {
			Healthcheck *dockerHealthConfig
		} `json:"config"`
	}
	if err := json.Unmarshal(config, &img); err != nil {
		return nil, err
	}
	h := img.Config.Healthcheck
	if h == nil || len(h.Test) == 0 || h.Test[0] == "NONE" {
		return nil, nil
	}
	switch h.Test[0] {
	case "CMD", "CMD-SHELL":
		if len(h.Test) < 2 {
			return nil, fmt.Errorf("healthcheck: %s needs a command", h.Test[0])
		}
	default:
		return nil, fmt.Errorf("healthcheck: test must start with CMD, CMD-SHELL or NONE, not %q", h.Test[0])
	}
	if h.Interval < 0 || h.Timeout < 0 || h.StartPeriod < 0 || h.StartInterval < 0 || h.Retries < 0 {
		return nil, fmt.Errorf("healthcheck: durations and retries must not be negative")
	}
	return &api.Healthcheck{
		Test:          append([]string(nil), h.Test...),
		Interval:      api.Duration(h.Interval),
		Timeout:       api.Duration(h.Timeout),
		Retries:       uint64(h.Retries),
		StartPeriod:   api.Duration(h.StartPeriod),
		StartInterval: api.Duration(h.StartInterval),
	}, nil
}

// taskHealthcheck is the healthcheck a task's container runs, nil for
// none: the spec's when it has one, else its image's HEALTHCHECK, as
// under Docker. A spec that switches the check off (test NONE: compose's
// disable: true) switches the image's off too; only a spec without one
// (nil) takes the image's.
func taskHealthcheck(spec, image *api.Healthcheck) *api.Healthcheck {
	hc := spec
	if hc == nil {
		hc = image
	}
	if hc.Disabled() {
		return nil
	}
	return hc
}

// monitor runs a container's healthcheck until cancelled.
type monitor struct {
	cancel context.CancelFunc
	mu     sync.Mutex
	h      health
}

func (m *monitor) get() (api.HealthState, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.h.State, m.h.Message
}

var execSeq atomic.Uint64

// ensureMonitor starts the healthcheck of a running container unless it
// runs already, and returns its verdict so far.
func (e *Executor) ensureMonitor(id, hcJSON string) (api.HealthState, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if m := e.health[id]; m != nil {
		return m.get()
	}
	var hc api.Healthcheck
	if err := json.Unmarshal([]byte(hcJSON), &hc); err != nil {
		return api.HealthUnhealthy, fmt.Sprintf("unhealthy: bad healthcheck label: %v", err)
	}
	if e.closed || e.bg.Err() != nil {
		return api.HealthStarting, ""
	}
	ctx, cancel := context.WithCancel(e.bg)
	m := &monitor{cancel: cancel, h: health{State: api.HealthStarting}}
	e.health[id] = m
	e.bgWG.Add(1)
	go func() {
		defer e.bgWG.Done()
		e.runHealth(e.ctx(ctx), id, withHealthDefaults(hc), m)
	}()
	return m.get()
}

func (e *Executor) stopMonitor(id string) {
	e.mu.Lock()
	m := e.health[id]
	delete(e.health, id)
	e.mu.Unlock()
	if m != nil {
		m.cancel()
	}
}

func (e *Executor) runHealth(ctx context.Context, id string, hc api.Healthcheck, m *monitor) {
	clock := e.cfg.Clock
	started := clock.Now()
	for {
		interval := hc.Interval.Std()
		m.mu.Lock()
		starting := m.h.State == api.HealthStarting
		m.mu.Unlock()
		if starting && clock.Now().Sub(started) < hc.StartPeriod.Std() && hc.StartInterval > 0 {
			interval = hc.StartInterval.Std()
		}
		t := clock.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		ok, out := e.probe(ctx, id, hc)
		if ctx.Err() != nil {
			return
		}
		inStart := clock.Now().Sub(started) < hc.StartPeriod.Std()
		m.mu.Lock()
		prev := m.h.State
		m.h = nextHealth(m.h, ok, out, inStart, hc.Retries)
		changed := m.h.State != prev
		if changed {
			e.log.Info("health changed", logKeyTask, id, "health", m.h.State, "message", m.h.Message)
		}
		m.mu.Unlock()
		if changed {
			e.notify()
		}
	}
}

// probe runs the healthcheck command once inside the container.
func (e *Executor) probe(ctx context.Context, id string, hc api.Healthcheck) (bool, string) {
	var args []string
	switch hc.Test[0] {
	case "CMD":
		args = hc.Test[1:]
	case "CMD-SHELL":
		args = []string{"/bin/sh", "-c", strings.Join(hc.Test[1:], " ")}
	default:
		return true, ""
	}
	c, err := e.client.LoadContainer(ctx, id)
	if err != nil {
		return false, err.Error()
	}
	t, err := c.Task(ctx, nil)
	if err != nil {
		return false, err.Error()
	}
	spec, err := c.Spec(ctx)
	if err != nil {
		return false, err.Error()
	}
	ps := *spec.Process
	ps.Args, ps.Terminal = args, false
	out := &capBuffer{max: 4096}
	execID := fmt.Sprintf("health-%d", execSeq.Add(1))
	p, err := t.Exec(ctx, execID, &ps, cio.NewCreator(cio.WithStreams(nil, out, out), cio.WithFIFODir(e.fifoDir())))
	if err != nil {
		return false, cleanRuntimeErr(err).Error()
	}
	// A fresh context: the process must be deleted even when ctx ended.
	defer func() {
		dctx, cancel := context.WithTimeout(e.ctx(context.Background()), 10*time.Second)
		defer cancel()
		_, _ = p.Delete(dctx, client.WithProcessKill)
	}()
	exited, err := p.Wait(ctx)
	if err != nil {
		return false, err.Error()
	}
	if err := p.Start(ctx); err != nil {
		return false, cleanRuntimeErr(err).Error()
	}
	timer := e.cfg.Clock.NewTimer(hc.Timeout.Std())
	defer timer.Stop()
	select {
	case s := <-exited:
		p.IO().Wait()
		if code := s.ExitCode(); code != 0 {
			return false, fmt.Sprintf("exit code %d: %s", code, out.String())
		}
		return true, out.String()
	case <-timer.C():
		_ = p.Kill(ctx, syscall.SIGKILL)
		return false, fmt.Sprintf("timed out after %s", hc.Timeout)
	case <-ctx.Done():
		return false, ctx.Err().Error()
	}
}

func (e *Executor) fifoDir() string { return e.cfg.DataDir + "/fifo" }

// capBuffer keeps the first max bytes written to it.
type capBuffer struct {
	mu  sync.Mutex
	max int
	b   bytes.Buffer
}

func (c *capBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - c.b.Len(); room > 0 {
		c.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (c *capBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.TrimSpace(c.b.String())
}
