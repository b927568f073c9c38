package controlapitest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi/server"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// Fixture is a served control API over a seeded store.
type Fixture struct {
	Store *store.Store
	// Socket is the unix socket the API answers on.
	Socket string
	// Now is the fixed time the seed and the API use.
	Now time.Time
}

// New starts a one-manager store, seeds it (see Seed) and serves the API
// on a socket in a temporary directory until the test ends.
func New(tb testing.TB) *Fixture {
	tb.Helper()
	c := storetest.New(tb, storetest.Options{Managers: 1})
	if _, err := c.WaitLeader(10 * time.Second); err != nil {
		tb.Fatal(err)
	}
	f := &Fixture{Store: c.Store(0), Now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err := Seed(f.Store, f.Now); err != nil {
		tb.Fatal(err)
	}
	// A stand-in for the cluster identity's keyed hash.
	hash := func(_ context.Context, plain []byte) (string, error) {
		m := hmac.New(sha256.New, []byte("controlapitest"))
		m.Write(plain)
		return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil)), nil
	}
	h, err := server.New(server.Config{Store: f.Store, Now: func() time.Time { return f.Now }, HashSecret: hash})
	if err != nil {
		tb.Fatal(err)
	}
	f.Socket = Serve(tb, h)
	return f
}

// Serve serves h on a unix socket in a temporary directory until the test
// ends, and returns the socket's path.
func Serve(tb testing.TB, h http.Handler) string {
	tb.Helper()
	socket := filepath.Join(tb.TempDir(), "api.sock")
	ln, err := server.ListenUnix(socket)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Serve(ctx, ln, h) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("serve: %v", err)
		}
	})
	return socket
}

// Image tags of shop_web: the update in flight moves it from WebOld to WebNew.
const (
	WebOld = "registry.local/web:1"
	WebNew = "registry.local/web:2"
	// WebVIP is shop_web's VIP.
	WebVIP = "10.96.0.2"
	// PendingErr is the reason shop_web's third slot is not placed.
	PendingErr = "no suitable node: 2 nodes lack 512 MiB memory"
)

// Seed stores three nodes (alpha: ready worker n1; beta: down worker n2;
// boss: ready leader m1), stack shop with services shop_web (3 replicas
// updating WebOld → WebNew: slot 1 on alpha, slot 2 on boss after a failed
// task on alpha, slot 3 pending with PendingErr) and shop_mon (global, on
// alpha and boss), and service solo (1 replica, no tasks, no previous spec).
// shop_web (VIP WebVIP, alias "www") and shop_mon are on network
// shop_default; running tasks hold addresses (alpha 10.64.1.0/24, boss
// 10.64.2.0/24).
func Seed(s *store.Store, now time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ready := api.NodeStatus{State: api.NodeReady, LastHeartbeat: now}
	nodes := []*api.Node{
		{Meta: api.Meta{ID: "n1"}, Description: api.NodeDescription{Hostname: "alpha"}, Status: ready},
		{Meta: api.Meta{ID: "n2"}, Description: api.NodeDescription{Hostname: "beta"}, Status: api.NodeStatus{State: api.NodeDown}},
		{Meta: api.Meta{ID: "m1"}, Spec: api.NodeSpec{Role: api.RoleManager}, Description: api.NodeDescription{Hostname: "boss"},
			Status: ready, Manager: &api.ManagerStatus{RaftID: "m1", Addr: "127.0.0.1:4270", Leader: true}},
	}
	task := func(image string) api.TaskSpec { return api.TaskSpec{Container: api.ContainerSpec{Image: image}} }
	oldSpec := api.ServiceSpec{Name: "shop_web", Stack: "shop", Mode: api.ModeReplicated, Replicas: 3, Task: task(WebOld),
		Networks: []api.NetworkAttachment{{Target: "shop_default", Aliases: []string{"www"}}}}
	newSpec := oldSpec
	newSpec.Task = task(WebNew)
	web := &api.Service{Meta: api.Meta{ID: "svcweb"}, Spec: newSpec, PreviousSpec: &oldSpec, Endpoint: &api.Endpoint{VIP: WebVIP, Ports: []api.PortConfig{
		{Protocol: api.ProtocolTCP, Target: 80, Published: 8080, Mode: api.PublishIngress},
		{Protocol: api.ProtocolUDP, Target: 53, Published: 5353, Mode: api.PublishHost}}},
		Update: &api.UpdateStatus{State: api.UpdateUpdating, StartedAt: now.Add(-time.Minute), Updated: 2, Failed: 1, Message: "updating 2/3"}}
	mon := &api.Service{Meta: api.Meta{ID: "svcmon"}, Spec: api.ServiceSpec{Name: "shop_mon", Stack: "shop", Mode: api.ModeGlobal, Task: task("registry.local/mon:1"),
		Networks: []api.NetworkAttachment{{Target: "shop_default"}}, Endpoint: api.EndpointSpec{Mode: api.EndpointDNSRR}}}
	network := &api.Network{Meta: api.Meta{ID: "netdefault"}, Spec: api.NetworkSpec{Name: "shop_default", Stack: "shop", Driver: api.DefaultNetworkDriver}}
	solo := &api.Service{Meta: api.Meta{ID: "svcsolo"}, Spec: api.ServiceSpec{Name: "solo", Mode: api.ModeReplicated, Replicas: 1, Task: task("registry.local/solo:1")},
		Endpoint: &api.Endpoint{Problem: "VIP pool 10.96.0.0/30 exhausted"}}
	host := map[string]int{}
	running := func(id string, svc *api.Service, slot uint64, node string) *api.Task {
		addr := ""
		if node != "" {
			host[node]++
			addr = fmt.Sprintf("10.64.%d.%d/24", map[string]int{"n1": 1, "m1": 2}[node], 1+host[node])
		}
		return &api.Task{Meta: api.Meta{ID: id}, ServiceID: svc.ID, ServiceName: svc.Spec.Name, Slot: slot, NodeID: node, Addr: addr,
			Spec: svc.Spec.Task, DesiredState: api.TaskRunning,
			Status: api.TaskStatus{State: api.TaskRunning, Timestamp: now.Add(-30 * time.Second), Message: "started"}}
	}
	failed := running("t-web-2-old", web, 2, "n1")
	failed.DesiredState = api.TaskShutdown
	failed.Status = api.TaskStatus{State: api.TaskFailed, Timestamp: now.Add(-45 * time.Second), Err: "task: non-zero exit (1)", ExitCode: 1}
	pending := running("t-web-3", web, 3, "")
	pending.Status = api.TaskStatus{State: api.TaskPending, Timestamp: now.Add(-10 * time.Second), Err: PendingErr}
	tasks := []*api.Task{
		running("t-web-1", web, 1, "n1"), running("t-web-2", web, 2, "m1"), failed, pending,
		running("t-mon-a", mon, 0, "n1"), running("t-mon-b", mon, 0, "m1"),
	}
	_, err := s.Update(ctx, func(tx store.Tx) error {
		for _, n := range nodes {
			if err := tx.Create(n); err != nil {
				return err
			}
		}
		for _, o := range []api.Object{&api.Stack{Spec: api.StackSpec{Name: "shop"}}, network, web, mon, solo} {
			if err := tx.Create(o); err != nil {
				return err
			}
		}
		for _, t := range tasks {
			if err := tx.Create(t); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}
