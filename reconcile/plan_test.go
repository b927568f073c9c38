package reconcile

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// examples loads the project's example stacks as a desired state.
func examples(t testing.TB) State {
	t.Helper()
	l, err := ReadLayout("../examples")
	if err != nil {
		t.Fatal(err)
	}
	stacks, err := LoadAll(context.Background(), "../examples", "..", l)
	if err != nil {
		t.Fatal(err)
	}
	var bundles []api.Bundle
	for _, s := range stacks {
		bundles = append(bundles, s.Bundle)
	}
	return DesiredState(bundles)
}

// apply is what the store does with a changeset: the cluster then holds
// the stamped desired objects, and foreign objects untouched.
func apply(desired, actual State) State {
	out := Stamp(desired)
	for _, o := range objects(actual) {
		if Owned(o.labels) {
			continue
		}
		switch spec := o.spec.(type) {
		case api.NetworkSpec:
			out.Networks = append(out.Networks, spec)
		case api.SecretSpec:
			out.Secrets = append(out.Secrets, spec)
		case api.ConfigSpec:
			out.Configs = append(out.Configs, spec)
		case api.VolumeSpec:
			out.Volumes = append(out.Volumes, spec)
		case api.ServiceSpec:
			out.Services = append(out.Services, spec)
		}
	}
	return out
}

func service(s State, name string) *api.ServiceSpec {
	for i := range s.Services {
		if s.Services[i].Name == name {
			return &s.Services[i]
		}
	}
	return nil
}

// clone deep-copies a state through its JSON form (plus secret data).
func clone(s State) State {
	var out State
	b, _ := jsonMarshal(s)
	_ = jsonUnmarshal(b, &out)
	return out
}

func TestPlanGolden(t *testing.T) {
	base := Pin(examples(t))
	deployed := apply(base, State{})
	cases := []struct {
		name    string
		desired func(State) State
		actual  func(State) State
	}{
		{"empty-cluster", nil, func(State) State { return State{} }},
		{"nothing-changed", nil, nil},
		{"image-changed", func(s State) State {
			service(s, "shop_api").Task.Container.Image = "127.0.0.1:5000/gitorc/busybox:2"
			return s
		}, nil},
		{"replicas-changed", func(s State) State { service(s, "web_web").Replicas = 5; return s }, nil},
		{"service-added", func(s State) State {
			extra := *service(s, "web_web")
			extra.Name, extra.Replicas = "web_worker", 2
			extra.Endpoint.Ports = nil // a second service on web's port would be a problem
			s.Services = append(s.Services, extra)
			return s
		}, nil},
		{"service-removed", func(s State) State {
			s.Services = slices.DeleteFunc(s.Services, func(x api.ServiceSpec) bool { return x.Name == "shop_frontend" })
			return s
		}, nil},
		{"stack-removed", func(s State) State {
			s.Services = slices.DeleteFunc(s.Services, func(x api.ServiceSpec) bool { return x.Stack == "web" })
			s.Networks = slices.DeleteFunc(s.Networks, func(x api.NetworkSpec) bool { return x.Stack == "web" })
			s.Configs = slices.DeleteFunc(s.Configs, func(x api.ConfigSpec) bool { return x.Stack == "web" })
			return s
		}, nil},
		{"secret-rotated", func(s State) State { s.Secrets[0].DataHash = "sha256:2222"; return s },
			func(s State) State { s.Secrets[0].DataHash = "sha256:1111"; return apply(Pin(s), State{}) }},
		{"drift-scaled-by-hand", nil, func(s State) State { service(s, "shop_api").Replicas = 9; return s }},
		// Zero is left out of a spec's JSON form: still a change to 0.
		{"scaled-to-zero", func(s State) State { service(s, "web_web").Replicas = 0; return s }, nil},
		{"scaled-from-zero", nil, func(s State) State { service(s, "web_web").Replicas = 0; return s }},
		// A network subnet may not overlap the cluster's pools; one that
		// does not is accepted.
		{"subnet-overlaps-pools", func(s State) State {
			s.Networks = append(s.Networks, api.NetworkSpec{Name: "ops_clash", Stack: "ops", Driver: "overlay", Subnet: "10.64.9.0/24"},
				api.NetworkSpec{Name: "ops_vips", Stack: "ops", Driver: "overlay", Subnet: "10.96.0.0/20"},
				api.NetworkSpec{Name: "ops_fine", Stack: "ops", Driver: "overlay", Subnet: "192.168.50.0/24"})
			return s
		}, func(s State) State { pools := api.DefaultNetworkConfig(); s.Pools = &pools; return s }},
		// Published ports: two ingress services on one port, ingress and
		// host mode on one port, and a port of another stack's service
		// (kept aside when one stack is deployed by hand) are problems;
		// host-mode services may share a port.
		{"port-conflicts", func(s State) State {
			clash := *service(s, "web_web")
			clash.Name, clash.Stack = "ops_proxy", "ops"
			host := *service(s, "web_web")
			host.Name, host.Stack = "ops_agent", "ops"
			host.Endpoint.Ports = []api.PortConfig{{Protocol: api.ProtocolTCP, Target: 80, Published: 8081, Mode: api.PublishHost}}
			hostA, hostB := host, host
			hostA.Name, hostB.Name = "ops_edge_a", "ops_edge_b"
			hostA.Endpoint.Ports = []api.PortConfig{{Protocol: api.ProtocolUDP, Target: 53, Published: 5353, Mode: api.PublishHost}}
			hostB.Endpoint.Ports = hostA.Endpoint.Ports
			kept := host
			kept.Name, kept.Endpoint.Ports = "ops_dns", []api.PortConfig{{Protocol: api.ProtocolUDP, Target: 53, Published: 53, Mode: api.PublishIngress}}
			s.Services = append(s.Services, clash, host, hostA, hostB, kept)
			return s
		}, func(s State) State {
			other := *service(s, "web_web")
			other.Name, other.Stack = "infra_dns", "infra"
			other.Endpoint.Ports = []api.PortConfig{{Protocol: api.ProtocolUDP, Target: 53, Published: 53, Mode: api.PublishIngress}}
			s.Kept = append(s.Kept, other)
			return s
		}},
		// The ports the cluster listens on are not a service's to take,
		// in either mode; a port beside them is.
		{"reserved-ports", func(s State) State {
			wg := *service(s, "web_web")
			wg.Name, wg.Stack = "ops_vpn", "ops"
			wg.Endpoint.Ports = []api.PortConfig{{Protocol: api.ProtocolUDP, Target: 51820, Published: 51820, Mode: api.PublishIngress}}
			apiPort := wg
			apiPort.Name = "ops_proxy"
			apiPort.Endpoint.Ports = []api.PortConfig{{Protocol: api.ProtocolTCP, Target: 80, Published: 4270, Mode: api.PublishHost}}
			fine := wg
			fine.Name = "ops_fine"
			fine.Endpoint.Ports = []api.PortConfig{{Protocol: api.ProtocolTCP, Target: 51820, Published: 51820, Mode: api.PublishIngress}}
			s.Services = append(s.Services, wg, apiPort, fine)
			return s
		}, func(s State) State {
			s.Reserved = []ReservedPort{{Protocol: api.ProtocolTCP, Port: 4270, Use: "the managers' API"},
				{Protocol: api.ProtocolTCP, Port: 4271, Use: "Raft between managers"},
				{Protocol: api.ProtocolUDP, Port: 51820, Use: "WireGuard between nodes"}}
			return s
		}},
		{"foreign-and-external", func(s State) State {
			s.Networks = append(s.Networks, api.NetworkSpec{Name: "ops_net", Driver: "overlay", External: true})
			return s
		}, func(s State) State {
			s.Networks = append(s.Networks, api.NetworkSpec{Name: "shop_public", Driver: "overlay"},
				api.NetworkSpec{Name: "someone_elses", Driver: "overlay"})
			s.Networks = slices.DeleteFunc(s.Networks, func(x api.NetworkSpec) bool { return x.Name == "shop_public" && Owned(x.Labels) })
			return s
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			desired, actual := clone(base), clone(deployed)
			if tc.desired != nil {
				desired = Pin(tc.desired(desired)) // as sync and stack deploy do
			}
			if tc.actual != nil {
				actual = tc.actual(actual)
			}
			var got bytes.Buffer
			if err := Format(&got, Plan(desired, actual), false, false); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "plans", tc.name+".golden")
			if *update {
				_ = os.MkdirAll(filepath.Dir(path), 0o755)
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test ./reconcile -update creates it)", err)
			}
			if diff := cmp.Diff(string(want), got.String()); diff != "" {
				t.Errorf("plan differs from %s (-want +got):\n%s", path, diff)
			}
		})
	}
}

// mutate makes a random change to a desired state, as a commit might.
func mutate(r *rand.Rand, s State) State {
	switch r.Intn(9) {
	case 0:
		if len(s.Services) > 0 {
			i := r.Intn(len(s.Services))
			s.Services = slices.Delete(s.Services, i, i+1)
		}
	case 1:
		if len(s.Services) > 0 {
			x := s.Services[r.Intn(len(s.Services))]
			x.Name = fmt.Sprintf("%s_extra%d", x.Stack, r.Intn(1000))
			x.Task.Container.Env = append(slices.Clone(x.Task.Container.Env), fmt.Sprintf("N=%d", r.Intn(10)))
			s.Services = append(s.Services, x)
		}
	case 2:
		if len(s.Services) > 0 {
			s.Services[r.Intn(len(s.Services))].Replicas = uint64(r.Intn(20))
		}
	case 3:
		if len(s.Services) > 0 {
			x := &s.Services[r.Intn(len(s.Services))]
			x.Task.Container.Image = fmt.Sprintf("img:%d", r.Intn(5))
		}
	case 4:
		if len(s.Services) > 0 {
			x := &s.Services[r.Intn(len(s.Services))]
			x.Labels = map[string]string{"team": fmt.Sprint(r.Intn(3))}
		}
	case 5:
		if len(s.Networks) > 0 {
			i := r.Intn(len(s.Networks))
			s.Networks[i].Internal = !s.Networks[i].Internal
		}
	case 6:
		s.Volumes = append(s.Volumes, api.VolumeSpec{Name: fmt.Sprintf("v%d", r.Intn(100)), Stack: "shop", Driver: "local"})
	case 7:
		if len(s.Secrets) > 0 {
			s.Secrets[r.Intn(len(s.Secrets))].DataHash = fmt.Sprintf("sha256:%d", r.Intn(100))
		}
	case 8:
		if len(s.Services) > 0 {
			x := &s.Services[r.Intn(len(s.Services))]
			x.Update.Parallelism = uint64(r.Intn(4))
			x.Endpoint.Ports = nil
		}
	}
	return s
}

// Planning right after applying a plan finds nothing to do, whatever the
// starting cluster and the commit; and planning is deterministic.
func TestReplanAfterApplyIsUnchanged(t *testing.T) {
	base := examples(t)
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 300; i++ {
		actual := clone(base)
		for n := r.Intn(4); n > 0; n-- {
			actual = mutate(r, actual)
		}
		actual = apply(actual, State{Networks: []api.NetworkSpec{{Name: "foreign", Driver: "overlay"}}})
		desired := clone(base)
		for n := r.Intn(4); n > 0; n-- {
			desired = mutate(r, desired)
		}
		plan := Plan(desired, actual)
		if !cmp.Equal(plan, Plan(clone(desired), clone(actual))) {
			t.Fatalf("case %d: planning twice gave different plans", i)
		}
		if len(plan.Problems) > 0 {
			continue // duplicate random names: nothing would be applied
		}
		after := apply(desired, actual)
		again := Plan(desired, after)
		if again.HasChanges() || len(again.Problems) > 0 {
			var b bytes.Buffer
			_ = Format(&b, again, false, false)
			t.Fatalf("case %d: re-plan after apply is not empty:\n%s", i, b.String())
		}
		for _, s := range again.Steps {
			if s.Drift {
				t.Fatalf("case %d: %s %s drifts right after apply", i, s.Kind, s.Name)
			}
		}
		for _, s := range plan.Steps {
			if s.Name == "foreign" {
				t.Fatalf("case %d: the plan touches a foreign object: %+v", i, s)
			}
		}
	}
}

// Secret content never reaches a plan; only its hash does.
func TestPlanNeverShowsSecretData(t *testing.T) {
	desired := State{Secrets: []api.SecretSpec{{Name: "s", Stack: "x", File: "s.age", DataHash: "sha256:new", Data: api.SecretBytes("hunter2")}}}
	actual := Stamp(State{Secrets: []api.SecretSpec{{Name: "s", Stack: "x", File: "s.age", DataHash: "sha256:old", Data: api.SecretBytes("swordfish")}}})
	var b bytes.Buffer
	plan := Plan(desired, actual)
	_ = Format(&b, plan, false, true)
	js, _ := jsonMarshal(plan)
	for _, out := range []string{b.String(), string(js)} {
		if bytes.Contains([]byte(out), []byte("hunter2")) || bytes.Contains([]byte(out), []byte("swordfish")) {
			t.Fatalf("secret data in plan output:\n%s", out)
		}
	}
	if want := "data_hash: \"sha256:old\" -> \"sha256:new\""; !bytes.Contains(b.Bytes(), []byte(want)) {
		t.Errorf("plan lacks %q:\n%s", want, b.String())
	}
}
