package reconcile

import (
	"context"
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
)

func stackState(stack string, services ...string) State {
	s := State{Networks: []api.NetworkSpec{{Name: stack + "_default", Stack: stack, Driver: "overlay"}}}
	for _, name := range services {
		s.Services = append(s.Services, api.ServiceSpec{Name: stack + "_" + name, Stack: stack, Replicas: 1,
			Task: api.TaskSpec{Container: api.ContainerSpec{Image: name + ":1"}}})
	}
	return s
}

func deployedServices(s State) string {
	var out []string
	for _, x := range s.Services {
		out = append(out, x.Name)
	}
	return strings.Join(out, " ")
}

func TestDeployStackLeavesOtherStacksAlone(t *testing.T) {
	ctx := context.Background()
	cl := newMemCluster()
	if _, err := DeployStack(ctx, cl, "a", stackState("a", "web", "db")); err != nil {
		t.Fatal(err)
	}
	if _, err := DeployStack(ctx, cl, "b", stackState("b", "api")); err != nil {
		t.Fatal(err)
	}
	// Redeploying a without db removes db, and only db.
	cs, err := DeployStack(ctx, cl, "a", stackState("a", "web"))
	if err != nil {
		t.Fatal(err)
	}
	if n := cs.Counts(); n[Delete] != 1 || n[Create] != 0 {
		t.Errorf("counts %v, want one delete", n)
	}
	actual, _ := cl.Actual(ctx)
	if got := deployedServices(actual); got != "a_web b_api" {
		t.Errorf("services %q", got)
	}
	// The same deploy again commits nothing.
	before := cl.commits
	if _, err := DeployStack(ctx, cl, "a", stackState("a", "web")); err != nil || cl.commits != before {
		t.Errorf("no-op deploy: err %v, commits %d -> %d", err, before, cl.commits)
	}
	if _, err := RemoveStack(ctx, cl, "b"); err != nil {
		t.Fatal(err)
	}
	actual, _ = cl.Actual(ctx)
	if got := deployedServices(actual); got != "a_web" || len(actual.Networks) != 1 {
		t.Errorf("after rm b: services %q networks %d", got, len(actual.Networks))
	}
}

func TestDeployStackRefusesForeignNames(t *testing.T) {
	ctx := context.Background()
	cl := newMemCluster()
	cl.state.Services = []api.ServiceSpec{{Name: "a_web", Task: api.TaskSpec{Container: api.ContainerSpec{Image: "hand:1"}}}}
	before := cl.commits
	if _, err := DeployStack(ctx, cl, "a", stackState("a", "web")); err == nil || !strings.Contains(err.Error(), "not managed by gitorc") {
		t.Fatalf("err %v", err)
	}
	if cl.commits != before {
		t.Error("a refused deploy committed")
	}
	if _, err := DeployStack(ctx, cl, "a", stackState("b", "x")); err == nil || !strings.Contains(err.Error(), `belongs to stack "b"`) {
		t.Errorf("cross-stack object: %v", err)
	}
}

// A stack deployed by hand may not publish a port another stack's service
// publishes: the deploy is refused and nothing is committed.
func TestDeployStackRefusesAnotherStacksPort(t *testing.T) {
	ctx := context.Background()
	cl := newMemCluster()
	withPort := func(s State) State {
		s.Services[0].Endpoint.Ports = []api.PortConfig{{Protocol: api.ProtocolTCP, Target: 80, Published: 8080, Mode: api.PublishIngress}}
		return s
	}
	if _, err := DeployStack(ctx, cl, "a", withPort(stackState("a", "web"))); err != nil {
		t.Fatal(err)
	}
	before := cl.commits
	_, err := DeployStack(ctx, cl, "b", withPort(stackState("b", "proxy")))
	if err == nil || !strings.Contains(err.Error(), "services a_web, b_proxy all publish tcp port 8080") {
		t.Fatalf("err %v", err)
	}
	if cl.commits != before {
		t.Error("a refused deploy committed")
	}
	// Redeploying the stack that holds the port is fine.
	if _, err := DeployStack(ctx, cl, "a", withPort(stackState("a", "web", "db"))); err != nil {
		t.Fatal(err)
	}
}
