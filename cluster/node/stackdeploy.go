package node

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/server"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/gitorc/gitorc/reconcile/storecluster"
)

// stacksAPI deploys and removes stacks by hand for the control API
// (server.StackDeployer): PUT and DELETE /v1/stacks/{name}.
type stacksAPI struct {
	d  *daemon
	cl *storecluster.Cluster
}

var _ server.StackDeployer = stacksAPI{}

// DeployStack opens the stack's sealed secrets and applies it.
func (s stacksAPI) DeployStack(ctx context.Context, name string, req controlapi.DeployRequest) (controlapi.Plan, error) {
	var desired reconcile.State
	if len(req.Desired) > 0 {
		if err := json.Unmarshal(req.Desired, &desired); err != nil {
			return nil, server.Errorf(http.StatusBadRequest, "bad request: %v", err)
		}
	}
	for i, sec := range desired.Secrets {
		if sec.External {
			continue
		}
		ident, err := s.d.identity(ctx)
		if err != nil {
			return nil, unavailable(err)
		}
		sealed, ok := req.Sealed[sec.Name]
		if !ok {
			return nil, server.Errorf(http.StatusBadRequest, "secret %s: no sealed content (only file secrets can be deployed by hand)", sec.Name)
		}
		plain, err := ident.Open(sealed)
		if err != nil {
			return nil, server.Errorf(http.StatusBadRequest, "secret %s (%s): %v", sec.Name, sec.File, err)
		}
		desired.Secrets[i].Data, desired.Secrets[i].DataHash = plain, ident.Hash(plain)
	}
	cs, err := reconcile.DeployStack(ctx, s.cl, name, desired)
	plan, merr := json.Marshal(cs)
	if err != nil {
		return nil, &server.PlanError{Err: err, Plan: plan}
	}
	return plan, merr
}

// RemoveStack removes a stack's objects.
func (s stacksAPI) RemoveStack(ctx context.Context, name string) (controlapi.Plan, error) {
	cs, err := reconcile.RemoveStack(ctx, s.cl, name)
	if err != nil {
		return nil, server.WithStatus(http.StatusConflict, err)
	}
	return json.Marshal(cs)
}
