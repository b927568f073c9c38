package containerd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/agent"
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
