package session

import (
	"context"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/google/go-cmp/cmp"
)

type nopAgent struct{}

func (nopAgent) Assign([]agent.Assignment) {}

func TestAssignmentsCarryEachTasksFiles(t *testing.T) {
	web := &api.Task{Meta: api.Meta{ID: "web"}}
	web.Spec.Container.Secrets = []api.FileRef{{Name: "pw"}, {Name: "gone"}}
	web.Spec.Container.Configs = []api.FileRef{{Name: "nginx.conf"}}
	job := &api.Task{Meta: api.Meta{ID: "job"}}
	set := &wire.AssignmentSet{Tasks: []*api.Task{web, job},
		Secrets: []wire.SecretFile{{Name: "pw", Data: wire.Plaintext("s3cret")}, {Name: "other", Data: wire.Plaintext("x")}},
		Configs: []wire.ConfigFile{{Name: "nginx.conf", Data: []byte("server {}")}}}
	got := Assignments(set)
	want := []agent.Assignment{
		{Task: web, Files: agent.Files{Secrets: map[string]api.SecretBytes{"pw": api.SecretBytes("s3cret")},
			Configs: map[string][]byte{"nginx.conf": []byte("server {}")}}},
		{Task: job},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("assignments (-want +got):\n%s", diff)
	}
}

func TestReportKeepsLatestForwardStatus(t *testing.T) {
	if _, err := New(Config{Managers: []string{"127.0.0.1:1"}, TLS: nil, Agent: nopAgent{}}); err == nil {
		t.Fatal("config without TLS accepted")
	}
	c, err := New(Config{Managers: []string{"127.0.0.1:1"}, TLS: testTLS(), Agent: nopAgent{}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	_ = c.ReportTaskStatus(ctx, "t", api.TaskStatus{State: api.TaskRunning, Timestamp: now})
	_ = c.ReportTaskStatus(ctx, "t", api.TaskStatus{State: api.TaskStarting, Timestamp: now.Add(time.Second)})
	if st := c.latest["t"]; st.State != api.TaskRunning {
		t.Errorf("latest = %s, want running (a backward report is dropped)", st.State)
	}
	_ = c.ReportTaskStatus(ctx, "t", api.TaskStatus{State: api.TaskComplete, Timestamp: now.Add(2 * time.Second)})
	c.forget([]agent.Assignment{{Task: &api.Task{Meta: api.Meta{ID: "t"}}}})
	if st := c.latest["t"]; st.State != api.TaskComplete || !c.unsent["t"] {
		t.Errorf("latest = %s (unsent %v), want complete, unsent", st.State, c.unsent["t"])
	}
	c.forget(nil)
	if len(c.latest) != 0 || len(c.unsent) != 0 {
		t.Errorf("statuses of unassigned tasks kept: %v", c.latest)
	}
}

func TestBackoffDoublesUpToMax(t *testing.T) {
	c, err := New(Config{Managers: []string{"x:1"}, TLS: testTLS(), Agent: nopAgent{},
		MinBackoff: time.Second, MaxBackoff: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var got []time.Duration
	for i := range 5 {
		got = append(got, c.backoff(i))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backoff (-want +got):\n%s", diff)
	}
}
