package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/compose"
)

// DeployStack applies one stack by hand, as docker stack deploy does: the
// stack's objects become desired, objects the stack owned and no longer
// declares are removed, and every other stack is left alone. It commits in
// one transaction, or nothing when the plan has problems.
func DeployStack(ctx context.Context, cl Cluster, stack string, desired State) (Changeset, error) {
	for _, o := range objects(desired) {
		if !o.external && o.stack != stack {
			return Changeset{}, fmt.Errorf("%s %s belongs to stack %q, not %q", o.kind, o.name, o.stack, stack)
		}
	}
	actual, err := cl.Actual(ctx)
	if err != nil {
		return Changeset{}, err
	}
	desired = Pin(desired)
	cs := Plan(desired, scope(actual, stack))
	if len(cs.Problems) > 0 {
		return cs, errors.New(strings.Join(cs.Problems, "\n"))
	}
	if !cs.HasChanges() {
		return cs, nil
	}
	put, del := Changes(cs, desired)
	sync, err := cl.Sync(ctx)
	if err != nil {
		return cs, err
	}
	return cs, cl.Commit(ctx, Commit{Put: put, Delete: del, State: sync})
}

// RemoveStack removes every object a stack owns.
func RemoveStack(ctx context.Context, cl Cluster, stack string) (Changeset, error) {
	return DeployStack(ctx, cl, stack, State{})
}

// scope hides the objects other stacks own, so that planning one stack
// never prunes another; foreign objects stay visible, so a name clash with
// them is still a problem. Other stacks' services are kept aside (Kept):
// their published ports still conflict with the stack's.
func scope(actual State, stack string) State {
	keep := func(labels map[string]string) bool {
		return !Owned(labels) || labels[api.LabelStack] == stack
	}
	out := State{Pools: actual.Pools, Reserved: actual.Reserved}
	for _, x := range actual.Networks {
		if keep(x.Labels) {
			out.Networks = append(out.Networks, x)
		}
	}
	for _, x := range actual.Secrets {
		if keep(x.Labels) {
			out.Secrets = append(out.Secrets, x)
		}
	}
	for _, x := range actual.Configs {
		if keep(x.Labels) {
			out.Configs = append(out.Configs, x)
		}
	}
	for _, x := range actual.Volumes {
		if keep(x.Labels) {
			out.Volumes = append(out.Volumes, x)
		}
	}
	for _, x := range actual.Services {
		if keep(x.Labels) {
			out.Services = append(out.Services, x)
		} else {
			out.Kept = append(out.Kept, x)
		}
	}
	return out
}

// DeployPayload is what a stack deployed by hand sends the manager (gitorc
// stack deploy -c): the stack's desired state as JSON, its configs' content
// read from dir, and its sealed secrets' files as they are (only a manager
// opens them).
func DeployPayload(st *compose.Stack, dir string) (desired []byte, sealed map[string][]byte, err error) {
	state := DesiredState([]api.Bundle{st.Bundle})
	sealed = map[string][]byte{}
	for _, s := range state.Secrets {
		if s.External || s.File == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, s.File))
		if err != nil {
			return nil, nil, fmt.Errorf("secret %s: %w", s.Name, err)
		}
		sealed[s.Name] = b
	}
	for i, c := range state.Configs {
		if c.External || c.File == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, c.File))
		if err != nil {
			return nil, nil, fmt.Errorf("config %s: %w", c.Name, err)
		}
		sum := sha256.Sum256(b)
		state.Configs[i].Data, state.Configs[i].DataHash = b, "sha256:"+hex.EncodeToString(sum[:])
	}
	desired, err = json.Marshal(state)
	return desired, sealed, err
}
