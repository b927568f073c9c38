package node

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/compose"
	"github.com/gitorc/gitorc/reconcile"
)

// deployStackFile deploys the stack of a compose file as gitorc stack
// deploy -c file name does: loaded against the cluster's node policies
// (refused at its line when no node allows a setting), its configs and
// sealed secrets read beside it, sent as the desired state. It returns the
// plan the manager applied, raw and decoded.
func deployStackFile(ctx context.Context, c *client.Client, name, file string) (controlapi.Plan, reconcile.Changeset, error) {
	src := compose.Source{Name: name, Files: []string{file}, Root: filepath.Dir(file)}
	if nodes, err := c.Nodes(ctx); err == nil {
		src.Policies, src.CheckPolicies = controlapi.NodePolicies(nodes), true
	}
	st, err := compose.Load(ctx, src)
	if err != nil {
		return nil, reconcile.Changeset{}, err
	}
	req, err := deployRequest(st, filepath.Dir(file))
	if err != nil {
		return nil, reconcile.Changeset{}, err
	}
	plan, err := c.DeployStack(ctx, name, req)
	cs, err := decodePlan(plan, err)
	return plan, cs, err
}

// deployRequest is what gitorc stack deploy sends for a loaded stack.
func deployRequest(st *compose.Stack, dir string) (controlapi.DeployRequest, error) {
	desired, sealed, err := reconcile.DeployPayload(st, dir)
	return controlapi.DeployRequest{Desired: desired, Sealed: sealed}, err
}

// mustDeployStackFile is deployStackFile through the node's socket,
// failing the test on an error.
func mustDeployStackFile(t *testing.T, socket, name, file string) (controlapi.Plan, reconcile.Changeset) {
	t.Helper()
	plan, cs, err := deployStackFile(context.Background(), client.Unix(socket), name, file)
	if err != nil {
		t.Fatalf("deploy %s: %v", name, err)
	}
	return plan, cs
}

// decodePlan decodes the plan a stack deploy or rm answered (as gitorc
// stack deploy and rm do).
func decodePlan(plan controlapi.Plan, err error) (reconcile.Changeset, error) {
	var cs reconcile.Changeset
	if err != nil {
		return cs, err
	}
	if err := json.Unmarshal(plan, &cs); err != nil {
		return cs, fmt.Errorf("stack plan: decode answer: %w", err)
	}
	return cs, nil
}

// hasStepOf reports whether the plan takes action on the object kind/name.
func hasStepOf(cs reconcile.Changeset, kind reconcile.Kind, name string, action reconcile.Action) bool {
	for _, s := range cs.Steps {
		if s.Kind == kind && s.Name == name && s.Action == action {
			return true
		}
	}
	return false
}
