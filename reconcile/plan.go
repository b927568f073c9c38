package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
)

// Kind is the kind of object a plan step changes. Kinds are ordered as a
// revision is applied: what services use comes before the services.
type Kind uint8

const (
	KindNetwork Kind = iota
	KindSecret
	KindConfig
	KindVolume
	KindService
)

var kindNames = []string{"network", "secret", "config", "volume", "service"}

func (k Kind) String() string { return kindNames[k] }

func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

func (k *Kind) UnmarshalText(b []byte) error { return unmarshalName(kindNames, b, (*uint8)(k), "kind") }

// Action is what a step does to its object.
type Action uint8

const (
	Unchanged Action = iota
	Create
	Update
	Delete
)

var actionNames = []string{"unchanged", "create", "update", "delete"}

func (a Action) String() string { return actionNames[a] }

func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

func (a *Action) UnmarshalText(b []byte) error {
	return unmarshalName(actionNames, b, (*uint8)(a), "action")
}

func unmarshalName(names []string, b []byte, out *uint8, what string) error {
	for i, n := range names {
		if n == string(b) {
			*out = uint8(i)
			return nil
		}
	}
	return fmt.Errorf("unknown %s %q", what, b)
}

// State is a set of cluster objects as the planner sees them: their specs,
// with gitorc's ownership labels on the objects gitorc manages.
type State struct {
	Networks []api.NetworkSpec `json:"networks,omitempty"`
	Secrets  []api.SecretSpec  `json:"secrets,omitempty"`
	Configs  []api.ConfigSpec  `json:"configs,omitempty"`
	Volumes  []api.VolumeSpec  `json:"volumes,omitempty"`
	Services []api.ServiceSpec `json:"services,omitempty"`
	// Pools is the cluster's address plan (actual state only): desired
	// network subnets must not overlap it.
	Pools *api.NetworkConfig `json:"pools,omitempty"`
	// Kept are services outside the plan's scope that stay whatever it
	// does (other stacks', when one stack is deployed by hand; actual
	// state only): their published ports count for conflicts.
	Kept []api.ServiceSpec `json:"kept,omitempty"`
	// Reserved are the ports the cluster itself listens on, on its nodes'
	// addresses (actual state only): a published port there would take
	// the nodes' own traffic (WireGuard, the managers' API and Raft).
	Reserved []ReservedPort `json:"reserved,omitempty"`
	// Policies are the policies of the cluster's nodes (actual state
	// only; a node that reports none has the default one): a desired
	// service that needs what none of them allows is a problem.
	Policies []api.NodePolicy `json:"policies,omitempty"`
}

// ReservedPort is a port gitorc uses on a node: Use says for what.
type ReservedPort struct {
	Protocol api.Protocol `json:"protocol"`
	Port     uint32       `json:"port"`
	Use      string       `json:"use"`
}

// Change is one field that differs. From is empty for a field being set,
// To for a field being removed; a number or boolean that is zero on one
// side shows as 0 or false there.
type Change struct {
	Path string `json:"path"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// Step is what happens to one object.
type Step struct {
	Kind    Kind     `json:"kind"`
	Name    string   `json:"name"`
	Stack   string   `json:"stack,omitempty"`
	Action  Action   `json:"action"`
	Changes []Change `json:"changes,omitempty"`
	// Drift is set when the object was changed behind Git's back: it no
	// longer matches what gitorc last applied.
	Drift bool `json:"drift,omitempty"`
}

// Changeset is the plan that takes the cluster from an actual state to a
// desired one. Problems make it inapplicable: a revision with problems is
// failed, and nothing of it is applied.
type Changeset struct {
	Steps    []Step   `json:"steps"`
	Problems []string `json:"problems,omitempty"`
}

// HasChanges reports whether applying the plan would change anything.
func (c Changeset) HasChanges() bool {
	for _, s := range c.Steps {
		if s.Action != Unchanged {
			return true
		}
	}
	return false
}

// Counts returns how many steps take each action.
func (c Changeset) Counts() map[Action]int {
	n := map[Action]int{}
	for _, s := range c.Steps {
		n[s.Action]++
	}
	return n
}

// object is the planner's uniform view of any spec.
type object struct {
	kind     Kind
	name     string
	stack    string
	external bool
	labels   map[string]string
	spec     any
}

func objects(s State) []object {
	var out []object
	for _, n := range s.Networks {
		out = append(out, object{KindNetwork, n.Name, n.Stack, n.External, n.Labels, n})
	}
	for _, x := range s.Secrets {
		out = append(out, object{KindSecret, x.Name, x.Stack, x.External, x.Labels, x})
	}
	for _, x := range s.Configs {
		out = append(out, object{KindConfig, x.Name, x.Stack, x.External, x.Labels, x})
	}
	for _, v := range s.Volumes {
		out = append(out, object{KindVolume, v.Name, v.Stack, v.External, v.Labels, v})
	}
	for _, x := range s.Services {
		out = append(out, object{KindService, x.Name, x.Stack, false, x.Labels, x})
	}
	return out
}

type key struct {
	kind Kind
	name string
}

// Plan computes the changeset that takes actual to desired. It is a pure
// function: no I/O, no clock, and the same inputs always give the same
// steps, ordered by kind (networks, secrets, configs, volumes, services)
// and name, with deletions last in the reverse kind order (services go
// before the networks they use).
//
// Desired objects marked external are not managed: they must exist in
// actual. Actual objects without gitorc's ownership label are foreign:
// never changed, never pruned, and a desired object of the same name is a
// problem rather than a silent take-over.
func Plan(desired, actual State) Changeset {
	var cs Changeset
	have := map[key]object{}
	for _, o := range objects(actual) {
		have[key{o.kind, o.name}] = o
	}
	want := map[key]string{} // → the stack declaring it
	var steps, deletes []Step
	for _, d := range objects(desired) {
		k := key{d.kind, d.name}
		a, exists := have[k]
		if n, ok := d.spec.(api.NetworkSpec); ok && n.Subnet != "" && actual.Pools != nil {
			if sub, err := netip.ParsePrefix(n.Subnet); err == nil {
				if pool := actual.Pools.Overlaps(sub); pool != "" {
					cs.Problems = append(cs.Problems, fmt.Sprintf("network %s: ipam.config.subnet %s overlaps %s: choose a subnet outside the cluster's pools, or remove it", d.name, n.Subnet, pool))
				}
			}
		}
		if d.external {
			if !exists {
				cs.Problems = append(cs.Problems, fmt.Sprintf("external %s %s does not exist in the cluster: create it, or remove external: true to let the stack create it", d.kind, d.name))
			}
			continue
		}
		if first, dup := want[k]; dup {
			cs.Problems = append(cs.Problems, fmt.Sprintf("%s %s is declared by stacks %s and %s: give one of them another name", d.kind, d.name, first, d.stack))
			continue
		}
		want[k] = d.stack
		step := Step{Kind: d.kind, Name: d.name, Stack: d.stack}
		switch {
		case !exists:
			step.Action = Create
		case !Owned(a.labels):
			cs.Problems = append(cs.Problems, fmt.Sprintf("%s %s already exists and is not managed by gitorc: remove or rename it, or mark it external in the stack", d.kind, d.name))
			continue
		default:
			step.Changes = diff(flatten(d.spec), flatten(a.spec))
			if len(step.Changes) > 0 {
				step.Action = Update
			}
			step.Drift = drifted(a)
		}
		steps = append(steps, step)
	}
	for _, a := range objects(actual) {
		if _, wanted := want[key{a.kind, a.name}]; wanted || !Owned(a.labels) {
			continue
		}
		deletes = append(deletes, Step{Kind: a.kind, Name: a.name, Stack: a.labels[api.LabelStack], Action: Delete})
	}
	sort.SliceStable(steps, func(i, j int) bool {
		if steps[i].Kind != steps[j].Kind {
			return steps[i].Kind < steps[j].Kind
		}
		return steps[i].Name < steps[j].Name
	})
	sort.SliceStable(deletes, func(i, j int) bool {
		if deletes[i].Kind != deletes[j].Kind {
			return deletes[i].Kind > deletes[j].Kind
		}
		return deletes[i].Name < deletes[j].Name
	})
	cs.Steps = append(steps, deletes...)
	cs.Problems = append(cs.Problems, portConflicts(desired, actual, want)...)
	cs.Problems = append(cs.Problems, policyProblems(desired, actual)...)
	sort.Strings(cs.Problems)
	return cs
}

// Owned reports whether labels mark an object as created by gitorc.
func Owned(labels map[string]string) bool { return labels[api.LabelManagedBy] == managedBy }

const (
	managedBy = "gitorc"
	// LabelSpecHash records the hash of the spec gitorc applied, so that a
	// change made behind Git's back shows as drift.
	LabelSpecHash  = "gitorc.spec-hash"
	ownLabelPrefix = "gitorc."
)

// Stamp returns desired with gitorc's ownership labels on every object it
// manages: managed-by, stack and the hash of the spec as applied. The store
// holds stamped specs; Plan ignores the stamps when it compares.
func Stamp(desired State) State {
	out := State{}
	for _, n := range desired.Networks {
		if !n.External {
			n.Labels = stampLabels(n.Labels, n.Stack, n)
			out.Networks = append(out.Networks, n)
		}
	}
	for _, s := range desired.Secrets {
		if !s.External {
			s.Labels = stampLabels(s.Labels, s.Stack, s)
			out.Secrets = append(out.Secrets, s)
		}
	}
	for _, c := range desired.Configs {
		if !c.External {
			c.Labels = stampLabels(c.Labels, c.Stack, c)
			out.Configs = append(out.Configs, c)
		}
	}
	for _, v := range desired.Volumes {
		if !v.External {
			v.Labels = stampLabels(v.Labels, v.Stack, v)
			out.Volumes = append(out.Volumes, v)
		}
	}
	for _, s := range desired.Services {
		s.Labels = stampLabels(s.Labels, s.Stack, s)
		out.Services = append(out.Services, s)
	}
	return out
}

func stampLabels(labels map[string]string, stack string, spec any) map[string]string {
	out := map[string]string{}
	for k, v := range labels {
		if !strings.HasPrefix(k, ownLabelPrefix) {
			out[k] = v
		}
	}
	out[api.LabelManagedBy] = managedBy
	out[api.LabelStack] = stack
	out[LabelSpecHash] = specHash(spec)
	return out
}

// specHash hashes a spec without gitorc's own labels.
func specHash(spec any) string {
	f := flatten(spec)
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\n", k, f[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func drifted(a object) bool {
	want, ok := a.labels[LabelSpecHash]
	return ok && want != specHash(a.spec)
}

// flatten turns a spec into path → value using its JSON form, without
// gitorc's own labels. Secret data is excluded by its type (json:"-"); its
// content hash is compared instead.
func flatten(spec any) map[string]string {
	b, err := json.Marshal(spec)
	if err != nil {
		panic(fmt.Sprintf("reconcile: spec %T does not marshal: %v", spec, err)) // api types always do
	}
	var v any
	_ = json.Unmarshal(b, &v)
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, x := range t {
				if prefix == "labels" && strings.HasPrefix(k, ownLabelPrefix) {
					continue
				}
				if prefix == "task" && k == "force_update" {
					continue // a forced redeploy is an operator's act, not drift from Git
				}
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				walk(p, x)
			}
		case []any:
			for i, x := range t {
				walk(fmt.Sprintf("%s[%d]", prefix, i), x)
			}
		case nil:
		default:
			s, _ := json.Marshal(t)
			out[prefix] = string(s)
		}
	}
	walk("", v)
	return out
}

// diff lists the fields that differ between desired and actual, by path.
// A number or boolean on one side only, in an object both sides have, was
// left out of the other's JSON form for being zero: it changes from or to
// 0 (false), it does not appear or vanish.
func diff(desired, actual map[string]string) []Change {
	var out []Change
	for p, to := range desired {
		from, ok := actual[p]
		if !ok {
			from = zeroIn(actual, p, to)
		}
		if from != to {
			out = append(out, Change{Path: p, From: from, To: to})
		}
	}
	for p, from := range actual {
		if _, ok := desired[p]; !ok {
			out = append(out, Change{Path: p, From: from, To: zeroIn(desired, p, from)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// zeroIn is the zero value of v's type when v is a number or a boolean
// and fields holds the object p belongs to; else "" (p is absent).
func zeroIn(fields map[string]string, p, v string) string {
	zero := ""
	switch {
	case v == "true" || v == "false":
		zero = "false"
	case v != "" && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9')):
		zero = "0"
	default:
		return ""
	}
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return zero // a top-level field: the object is the spec itself
	}
	parent := p[:i]
	for k := range fields {
		if strings.HasPrefix(k, parent+".") || strings.HasPrefix(k, parent+"[") {
			return zero
		}
	}
	return ""
}

// Pin sets each service's secret and config references to the content
// the desired state gives those objects (FileRef.Version, their
// DataHash), so that a change of content is a change of every service
// that uses it, which rolls its tasks as any spec change does; running
// tasks keep the version they were made with. References to external
// objects, and to objects whose hash is not known, stay unpinned.
func Pin(s State) State {
	secrets, configs := map[string]string{}, map[string]string{}
	for _, x := range s.Secrets {
		if !x.External {
			secrets[x.Name] = x.DataHash
		}
	}
	for _, x := range s.Configs {
		if !x.External {
			configs[x.Name] = x.DataHash
		}
	}
	pin := func(refs []api.FileRef, hashes map[string]string) []api.FileRef {
		if len(refs) == 0 {
			return refs
		}
		out := slices.Clone(refs)
		for i := range out {
			out[i].Version = hashes[out[i].Name]
		}
		return out
	}
	s.Services = slices.Clone(s.Services)
	for i := range s.Services {
		c := &s.Services[i].Task.Container
		c.Secrets, c.Configs = pin(c.Secrets, secrets), pin(c.Configs, configs)
	}
	return s
}

// DesiredState merges the bundles of a revision into one desired state,
// and fills in each service's RolloutAfter: the full names of its
// depends_on services and of every service of the stacks its stack
// depends on (gitorc.yaml), the services the orchestrator lets finish
// their rollout first.
func DesiredState(bundles []api.Bundle) State {
	var s State
	byStack := map[string][]string{}
	for _, b := range bundles {
		for _, svc := range b.Services {
			byStack[b.Stack.Name] = append(byStack[b.Stack.Name], svc.Name)
		}
	}
	for _, b := range bundles {
		s.Networks = append(s.Networks, b.Networks...)
		s.Secrets = append(s.Secrets, b.Secrets...)
		s.Configs = append(s.Configs, b.Configs...)
		s.Volumes = append(s.Volumes, b.Volumes...)
		for _, svc := range b.Services {
			var after []string
			conds := map[string]api.DependCondition{}
			for _, dep := range svc.DependsOn {
				after = append(after, svc.Stack+"_"+dep)
				if c, ok := svc.Conditions[dep]; ok {
					conds[svc.Stack+"_"+dep] = c
				}
			}
			if len(conds) > 0 {
				svc.Conditions = conds
			}
			for _, st := range b.Stack.DependsOn {
				after = append(after, byStack[st]...)
			}
			sort.Strings(after)
			svc.RolloutAfter = slices.Compact(after)
			s.Services = append(s.Services, svc)
		}
	}
	return s
}

// portConflicts finds published ports that cannot all be served once the
// plan is applied: two services publishing the same protocol and port in
// ingress mode (which answers on every node), or one in ingress mode and
// another in host mode. Host-mode ports of different services may share
// a port: the scheduler keeps their tasks on different nodes. The
// services that remain are the desired ones and the actual ones the plan
// keeps (foreign, or of stacks not in this plan).
func portConflicts(desired, actual State, want map[key]string) []string {
	type pub struct {
		proto api.Protocol
		port  uint32
	}
	type user struct {
		service string
		mode    api.PublishMode
	}
	users := map[pub][]user{}
	add := func(s api.ServiceSpec) {
		for _, p := range s.Endpoint.Ports {
			if p.Published == 0 {
				continue
			}
			k := pub{p.Protocol, p.Published}
			users[k] = append(users[k], user{s.Name, p.Mode})
		}
	}
	for _, s := range desired.Services {
		add(s)
	}
	for _, s := range actual.Services {
		_, wanted := want[key{KindService, s.Name}]
		if wanted || Owned(s.Labels) {
			continue // replaced by the desired spec, or pruned
		}
		add(s)
	}
	for _, s := range actual.Kept {
		add(s)
	}
	var out []string
	reserved := map[pub][]string{}
	for _, r := range actual.Reserved {
		k := pub{r.Protocol, r.Port}
		reserved[k] = append(reserved[k], r.Use)
	}
	for k, us := range users {
		if uses, ok := reserved[k]; ok {
			var names []string
			for _, u := range us {
				names = append(names, u.service)
			}
			subject := "service " + strings.Join(uniq(names), ", ") + " publishes"
			if len(uniq(names)) > 1 {
				subject = "services " + strings.Join(uniq(names), ", ") + " publish"
			}
			out = append(out, fmt.Sprintf("%s %s port %d, which the cluster uses on its nodes (%s): give it another port",
				subject, k.proto, k.port, strings.Join(uniq(uses), "; ")))
			continue
		}
		var ingress, host []string
		for _, u := range us {
			if u.mode == api.PublishIngress {
				ingress = append(ingress, u.service)
			} else {
				host = append(host, u.service)
			}
		}
		ingress, host = uniq(ingress), uniq(host)
		switch {
		case len(ingress) > 1:
			out = append(out, fmt.Sprintf("services %s all publish %s port %d on every node (ingress): give each its own port",
				strings.Join(ingress, ", "), k.proto, k.port))
		case len(ingress) == 1 && len(host) > 0:
			out = append(out, fmt.Sprintf("service %s publishes %s port %d on every node (ingress), which %s also publishes in host mode: give one of them another port",
				ingress[0], k.proto, k.port, strings.Join(host, ", ")))
		}
	}
	sort.Strings(out)
	return out
}

func uniq(s []string) []string {
	sort.Strings(s)
	return slices.Compact(s)
}
