package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/agent/containerd/imagetest"
	"github.com/gitorc/gitorc/cluster/api"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func (c *cluster) tasks(stack string) []api.Task {
	out, err := c.gitorc("ps", stack, "-o", "json")
	if err != nil {
		return nil
	}
	var ts []api.Task
	if json.Unmarshal([]byte(out), &ts) != nil {
		return nil
	}
	return ts
}

// readyByImage counts running, healthy tasks by image tag.
func readyByImage(ts []api.Task) map[string]int {
	out := map[string]int{}
	for _, t := range ts {
		if t.Status.State == api.TaskRunning && t.Status.Health == api.HealthHealthy {
			img := t.Spec.Container.Image
			out[img[strings.LastIndex(img, ":")+1:]]++
		}
	}
	return out
}

// balanced counts the tasks in the load-balancing set, as the network
// plane reads it from the store.
func balanced(ts []api.Task) int {
	n := 0
	for i := range ts {
		if ts[i].InLoadBalancer() {
			n++
		}
	}
	return n
}

func (c *cluster) updateState(service string) string {
	out, err := c.gitorc("service", "inspect", service, "-o", "json")
	if err != nil {
		return ""
	}
	var svcs []struct {
		Update *struct {
			State string `json:"state"`
		} `json:"update"`
	}
	if json.Unmarshal([]byte(out), &svcs) != nil || len(svcs) != 1 || svcs[0].Update == nil {
		return ""
	}
	return svcs[0].Update.State
}

// 10 replicas of web:1 roll to web:2 two at a time, start-first, each new
// task proving itself healthy before an old one stops: at every moment at
// least 10 healthy tasks exist, and 10 in the load-balancing set that
// the network plane reads (api.Task.InLoadBalancer). Then an image whose
// process exits at once rolls back by itself to web:2.
func TestRollingUpdateAndRollback_Root(t *testing.T) {
	c, _ := newCluster(t, 3)
	ctx := context.Background()
	// Three images of the same registry: web:1, web:2 (different content),
	// and bad:1, whose process exits at once.
	regAddr := c.registryAddr()
	for _, im := range []struct {
		repo, tag string
		cmd       []string
	}{{"gitorc/web", "1", []string{"sleep", "3600"}}, {"gitorc/web", "2", []string{"sleep", "3601"}}, {"gitorc/web", "bad", []string{"sh", "-c", "exit 1"}}} {
		img, err := imagetest.Busybox(ocispec.ImageConfig{Cmd: im.cmd})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.reg.Push(ctx, img, im.repo, im.tag); err != nil {
			t.Fatal(err)
		}
	}
	deploy := func(tag string) {
		t.Helper()
		stack := fmt.Sprintf(`services:
  web:
    image: %s/gitorc/web:%s
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      retries: 1
    deploy:
      replicas: 10
      update_config:
        parallelism: 2
        order: start-first
        failure_action: rollback
        monitor: 2s
      rollback_config:
        parallelism: 5
        order: start-first
`, regAddr, tag)
		file := filepath.Join(t.TempDir(), "compose.yaml")
		if err := os.WriteFile(file, []byte(stack), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := c.gitorc("stack", "deploy", "-c", file, "app"); err != nil {
			t.Fatalf("deploy %s: %v\n%s", tag, err, out)
		}
	}
	deploy("1")
	c.waitFor("10 healthy web:1", 120*time.Second, func() bool { return readyByImage(c.tasks("app"))["1"] == 10 })

	// Watch the service while it updates.
	var mu sync.Mutex
	minReady, minBalanced, polls := 1000, 1000, 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if ts := c.tasks("app"); ts != nil {
				n := 0
				for _, v := range readyByImage(ts) {
					n += v
				}
				mu.Lock()
				minReady, minBalanced, polls = min(minReady, n), min(minBalanced, balanced(ts)), polls+1
				mu.Unlock()
			}
		}
	}()
	start := time.Now()
	deploy("2")
	c.waitFor("the update to complete", 90*time.Second, func() bool {
		return c.updateState("app_web") == "completed" && readyByImage(c.tasks("app"))["2"] == 10
	})
	took := time.Since(start)
	close(stop)
	wg.Wait()
	if minReady < 10 {
		t.Errorf("only %d healthy tasks at one moment of a start-first update (of %d polls)", minReady, polls)
	}
	if minBalanced < 10 {
		t.Errorf("only %d tasks in the load-balancing set at one moment of a start-first update (of %d polls)", minBalanced, polls)
	}
	// The least the settings allow: 5 batches, each a task start (created
	// to ready, the median of this update's tasks) plus delay 0 — the
	// monitor window of the last batch comes on top.
	var starts []time.Duration
	for _, tk := range c.tasks("app") {
		if strings.HasSuffix(tk.Spec.Container.Image, ":2") && !tk.ReadyAt.IsZero() {
			starts = append(starts, tk.ReadyAt.Sub(tk.CreatedAt))
		}
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
	if len(starts) == 0 {
		t.Fatal("no ready times recorded")
	}
	median := starts[len(starts)/2]
	minimum := 5*median + 2*time.Second
	t.Logf("rolling update 10 replicas, parallelism 2, start-first: %s; minimum the settings allow %s (5 x %s task start + 2s monitor): ratio %.2f; fewest healthy tasks %d, fewest in the load-balancing set %d, over %d polls",
		took.Round(10*time.Millisecond), minimum.Round(10*time.Millisecond), median.Round(10*time.Millisecond), took.Seconds()/minimum.Seconds(), minReady, minBalanced, polls)

	// A broken image: its tasks fail, the update rolls back by itself.
	deploy("bad")
	c.waitFor("the automatic rollback", 180*time.Second, func() bool {
		return c.updateState("app_web") == "rollback_completed" && readyByImage(c.tasks("app"))["2"] == 10
	})
}
