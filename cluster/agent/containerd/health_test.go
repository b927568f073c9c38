package containerd_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/agent/containerd/imagetest"
	"github.com/gitorc/gitorc/cluster/api"
)

func TestHealthcheck_Root(t *testing.T) {
	requireRoot(t)
	ctl := t.TempDir()
	task := newTask(t, env.image, func(t *api.Task) {
		t.Spec.Container.Mounts = []api.Mount{{Type: api.MountBind, Source: ctl, Target: "/ctl", ReadOnly: true}}
		t.Spec.Container.Healthcheck = &api.Healthcheck{
			Test:     []string{"CMD-SHELL", "test -f /ctl/healthy || { echo no flag; exit 1; }"},
			Interval: api.Duration(100 * time.Millisecond),
			Timeout:  api.Duration(5 * time.Second),
			Retries:  2,
		}
	})
	runTask(t, task, agent.Files{})
	health := func() (api.HealthState, string) {
		o := observed(t, env.exec, task.ID)
		if o == nil {
			return api.HealthNone, "no container"
		}
		return o.Health, o.HealthMessage
	}
	if h, _ := health(); h != api.HealthStarting {
		t.Errorf("health before any probe = %s, want starting", h)
	}
	if err := os.WriteFile(filepath.Join(ctl, "healthy"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() (bool, string) {
		h, msg := health()
		return h == api.HealthHealthy, h.String() + " " + msg
	})
	if err := os.Remove(filepath.Join(ctl, "healthy")); err != nil {
		t.Fatal(err)
	}
	var msg string
	waitFor(t, 30*time.Second, func() (bool, string) {
		var h api.HealthState
		h, msg = health()
		return h == api.HealthUnhealthy, h.String() + " " + msg
	})
	if !strings.HasPrefix(msg, "unhealthy: 2 consecutive failures") || !strings.Contains(msg, "no flag") {
		t.Errorf("unhealthy message = %q", msg)
	}
}

// pushWithHealthcheck pushes the test image with hc as its Dockerfile
// HEALTHCHECK (config.Healthcheck) as repo:1 and returns its reference.
func pushWithHealthcheck(t *testing.T, repo string, hc imagetest.Healthcheck) string {
	t.Helper()
	img, err := env.sleepy.WithHealthcheck(hc)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := env.reg.Push(context.Background(), img, repo, "1")
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestImageHealthcheck_Root runs tasks whose spec has no healthcheck from
// an image that has one: the executor runs the image's, with its timing.
func TestImageHealthcheck_Root(t *testing.T) {
	requireRoot(t)
	t.Run("starting_healthy_unhealthy", func(t *testing.T) {
		// A long start period: failures do not count until a probe passed,
		// so the task stays starting until the flag is there.
		image := pushWithHealthcheck(t, "test/image-hc", imagetest.Healthcheck{
			Test:          []string{"CMD-SHELL", "test -f /ctl/healthy || { echo no flag; exit 1; }"},
			Interval:      100 * time.Millisecond,
			Timeout:       5 * time.Second,
			StartPeriod:   time.Hour,
			StartInterval: 100 * time.Millisecond,
			Retries:       2,
		})
		ctl := t.TempDir()
		task := newTask(t, image, func(t *api.Task) {
			t.Spec.Container.Mounts = []api.Mount{{Type: api.MountBind, Source: ctl, Target: "/ctl", ReadOnly: true}}
		})
		runTask(t, task, agent.Files{})
		health := func() (api.HealthState, string) {
			o := observed(t, env.exec, task.ID)
			if o == nil {
				return api.HealthNone, "no container"
			}
			return o.Health, o.HealthMessage
		}
		if h, msg := health(); h != api.HealthStarting {
			t.Fatalf("health of a task from an image with a HEALTHCHECK = %s %q, want starting", h, msg)
		}
		if err := os.WriteFile(filepath.Join(ctl, "healthy"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, func() (bool, string) {
			h, msg := health()
			return h == api.HealthHealthy, h.String() + " " + msg
		})
		if err := os.Remove(filepath.Join(ctl, "healthy")); err != nil {
			t.Fatal(err)
		}
		var msg string
		waitFor(t, 30*time.Second, func() (bool, string) {
			var h api.HealthState
			h, msg = health()
			return h == api.HealthUnhealthy, h.String() + " " + msg
		})
		if !strings.HasPrefix(msg, "unhealthy: 2 consecutive failures") || !strings.Contains(msg, "no flag") {
			t.Errorf("unhealthy message = %q, want 2 failures (the image's retries) and the check's output", msg)
		}
	})

	failing := pushWithHealthcheck(t, "test/image-hc-failing", imagetest.Healthcheck{
		Test:     []string{"CMD-SHELL", "echo image check; exit 1"},
		Interval: 100 * time.Millisecond,
		Timeout:  5 * time.Second,
		Retries:  1,
	})
	t.Run("failing", func(t *testing.T) {
		task := newTask(t, failing)
		runTask(t, task, agent.Files{})
		var o *agent.Observed
		waitFor(t, 30*time.Second, func() (bool, string) {
			o = observed(t, env.exec, task.ID)
			if o == nil {
				return false, "no container"
			}
			return o.Health == api.HealthUnhealthy, o.Health.String() + " " + o.HealthMessage
		})
		if !strings.HasPrefix(o.HealthMessage, "unhealthy: 1 consecutive failures") || !strings.Contains(o.HealthMessage, "image check") {
			t.Errorf("unhealthy message = %q", o.HealthMessage)
		}
	})
	t.Run("spec_healthcheck_wins", func(t *testing.T) {
		task := newTask(t, failing, func(t *api.Task) {
			t.Spec.Container.Healthcheck = &api.Healthcheck{Test: []string{"CMD", "true"},
				Interval: api.Duration(100 * time.Millisecond), Timeout: api.Duration(5 * time.Second), Retries: 1}
		})
		runTask(t, task, agent.Files{})
		waitFor(t, 30*time.Second, func() (bool, string) {
			o := observed(t, env.exec, task.ID)
			if o == nil {
				return false, "no container"
			}
			return o.Health == api.HealthHealthy, o.Health.String() + " " + o.HealthMessage
		})
	})
	// compose's disable: true, and test: ["NONE"], are test NONE: the
	// image's check does not run, and the task has no health. (With a
	// check the executor reports starting from the container's creation.)
	t.Run("disabled", func(t *testing.T) {
		task := newTask(t, failing, func(t *api.Task) {
			t.Spec.Container.Healthcheck = &api.Healthcheck{Test: []string{"NONE"}}
		})
		runTask(t, task, agent.Files{})
		o := observed(t, env.exec, task.ID)
		if o == nil || o.State != agent.ContainerRunning || o.Health != api.HealthNone {
			t.Fatalf("observed %+v, want running without health", o)
		}
	})
}
