package main

import (
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/spf13/cobra"
)

func TestRollouts(t *testing.T) {
	at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	svc := func(name string, u *api.UpdateStatus) controlapi.Service {
		var s controlapi.Service
		s.Spec.Name, s.Update = name, u
		return s
	}
	got := rollouts([]controlapi.Service{
		svc("shop_web", &api.UpdateStatus{State: api.UpdateUpdating, Done: 4, Total: 10, Failed: 1, NextBatchAt: at.Add(3 * time.Second)}),
		svc("shop_api", &api.UpdateStatus{State: api.UpdateWaiting, Message: "waiting for shop_db"}),
		svc("shop_db", &api.UpdateStatus{State: api.UpdateCompleted, Message: "update completed"}),
		svc("shop_cache", nil),
		svc("shop_front", &api.UpdateStatus{State: api.UpdateRollbackCompleted, Message: "rolled back: 2 of 2 updated tasks failed: exit code 1"}),
	}, at)
	want := []string{
		"shop_api: waiting for shop_db",
		"shop_front: rolled back: 2 of 2 updated tasks failed: exit code 1",
		"shop_web: updating 4/10, 1 failure, next batch in 3s",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rollouts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestUnserved(t *testing.T) {
	svc := func(name string, serving uint64, e *api.Endpoint) controlapi.Service {
		var s controlapi.Service
		s.Spec.Name, s.Serving, s.Endpoint = name, serving, e
		s.Spec.Endpoint.Ports = []api.PortConfig{{Protocol: api.ProtocolTCP, Target: 80, Published: 8080, Mode: api.PublishIngress}}
		return s
	}
	quiet := svc("quiet", 0, nil)
	quiet.Spec.Endpoint.Ports = nil // no port: nothing to serve
	got := unserved([]controlapi.Service{
		svc("web", 0, nil),
		svc("api", 2, nil),
		svc("solo", 1, &api.Endpoint{Problem: "VIP pool 10.96.0.0/30 exhausted"}),
		quiet,
	})
	want := []string{
		"solo: VIP pool 10.96.0.0/30 exhausted",
		"web: *:8080->80/tcp: no healthy task, connections are refused",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("unserved:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// gitorc status ends with the rollouts in flight and what is not served.
func TestPrintRollouts(t *testing.T) {
	serveAPI(t)
	cmd := &cobra.Command{}
	var b strings.Builder
	cmd.SetOut(&b)
	if err := printRollouts(cmd, newAPIClient(cmd)); err != nil {
		t.Fatal(err)
	}
	if want := "rollouts:\n  shop_web: updating, 1 failure\nnot served:\n  solo: VIP pool 10.96.0.0/30 exhausted\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}
