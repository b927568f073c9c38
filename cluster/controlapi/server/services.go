package server

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"sort"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/orchestrator"
	"github.com/gitorc/gitorc/cluster/store"
)

// findService resolves a service by ID or name.
func findService(tx store.ReadTx, ref string) (*api.Service, error) {
	svc, err := store.Get[api.Service](tx, ref)
	if err == nil {
		return svc, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	byName, err := store.Find[api.Service](tx, store.ByName(ref))
	if err != nil {
		return nil, err
	}
	if len(byName) == 0 {
		return nil, statusf(http.StatusNotFound, "service %q not found", ref)
	}
	return byName[0], nil
}

// serviceView counts a service's tasks.
func serviceView(tx store.ReadTx, svc *api.Service) (controlapi.Service, error) {
	tasks, err := store.Find[api.Task](tx, store.ByService(svc.ID))
	if err != nil {
		return controlapi.Service{}, err
	}
	v := controlapi.Service{Service: *svc}
	nodes := map[string]bool{}
	for _, t := range tasks {
		if t.DesiredState <= api.TaskRunning && t.Status.State == api.TaskRunning {
			v.Running++
		}
		if t.InLoadBalancer() {
			v.Serving++
		}
		if t.Status.State == api.TaskComplete && t.DesiredState <= api.TaskComplete {
			v.Completed++
		}
		if t.DesiredState <= api.TaskComplete && t.NodeID != "" {
			nodes[t.NodeID] = true
		}
	}
	switch svc.Spec.Mode {
	case api.ModeReplicated:
		v.Desired = svc.Spec.Replicas
	case api.ModeReplicatedJob:
		v.Desired = svc.Spec.TotalCompletions
	default:
		v.Desired = uint64(len(nodes))
	}
	if !svc.Spec.Mode.IsJob() {
		v.Completed = 0
	}
	return v, nil
}

func (s *server) listServices(*http.Request) (any, error) {
	out := []controlapi.Service{}
	err := s.st.View(func(tx store.ReadTx) error {
		svcs, err := store.Find[api.Service](tx, store.All())
		if err != nil {
			return err
		}
		for _, svc := range svcs {
			v, err := serviceView(tx, svc)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out, err
}

func (s *server) getService(r *http.Request) (any, error) {
	var out controlapi.Service
	err := s.st.View(func(tx store.ReadTx) error {
		svc, err := findService(tx, r.PathValue("service"))
		if err != nil {
			return err
		}
		out, err = serviceView(tx, svc)
		return err
	})
	return out, err
}

// changeService runs a checked change of one service and returns it.
func (s *server) changeService(r *http.Request, change func(*api.Service) error) (any, error) {
	want, err := wantVersion(r)
	if err != nil {
		return nil, err
	}
	var id string
	err = s.write(r, func(tx store.Tx) error {
		svc, err := findService(tx, r.PathValue("service"))
		if err != nil {
			return err
		}
		if err := checkVersion("service", svc.Spec.Name, want, svc.Version); err != nil {
			return err
		}
		id = svc.ID
		if err := change(svc); err != nil {
			return err
		}
		return tx.Update(svc)
	})
	if err != nil {
		return nil, err
	}
	var out controlapi.Service
	err = s.st.View(func(tx store.ReadTx) error {
		svc, err := store.Get[api.Service](tx, id)
		if err != nil {
			return err
		}
		out, err = serviceView(tx, svc)
		return err
	})
	return out, err
}

// markChanged labels the spec with the operation that changed it outside Git.
func markChanged(spec *api.ServiceSpec, op string) {
	spec.Labels = maps.Clone(spec.Labels)
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	spec.Labels[controlapi.LabelChangedBy] = op
}

func (s *server) scaleService(r *http.Request) (any, error) {
	var req controlapi.ScaleRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Replicas == nil {
		return nil, statusf(http.StatusBadRequest, "replicas is required")
	}
	n := *req.Replicas
	return s.changeService(r, func(svc *api.Service) error {
		if svc.Spec.Mode != api.ModeReplicated {
			return statusf(http.StatusBadRequest, "service %s is %s: only replicated services scale", svc.Spec.Name, svc.Spec.Mode)
		}
		svc.Spec.Replicas = n
		markChanged(&svc.Spec, fmt.Sprintf("scale %d", n))
		return nil
	})
}

// rollbackService returns the service to its previous spec and starts a
// rollback to it, as the updater does when failure_action is rollback.
func (s *server) rollbackService(r *http.Request) (any, error) {
	if err := decode(r, &struct{}{}); err != nil {
		return nil, err
	}
	return s.changeService(r, func(svc *api.Service) error {
		if svc.PreviousSpec == nil {
			return statusf(http.StatusConflict, "service %s has no previous spec to roll back to", svc.Spec.Name)
		}
		if svc.Update != nil && svc.Update.State == api.UpdateRollbackStarted {
			return statusf(http.StatusConflict, "service %s is already rolling back", svc.Spec.Name)
		}
		cur := svc.Spec
		svc.Spec, svc.PreviousSpec = *svc.PreviousSpec, &cur
		markChanged(&svc.Spec, "rollback")
		svc.Update = &api.UpdateStatus{State: api.UpdateRollbackStarted, StartedAt: s.now().UTC(),
			Target: orchestrator.SpecTarget(svc.Spec.Task), Message: "rollback requested by operator"}
		return nil
	})
}

// forceService redeploys the same spec: every task is replaced by a
// rolling update, which a failure can roll back to the spec as it was.
func (s *server) forceService(r *http.Request) (any, error) {
	if err := decode(r, &struct{}{}); err != nil {
		return nil, err
	}
	return s.changeService(r, func(svc *api.Service) error {
		prev := svc.Spec
		svc.PreviousSpec = &prev
		svc.Spec.Task.ForceUpdate++
		markChanged(&svc.Spec, "force update")
		svc.Update = nil // the orchestrator starts a rollout to the new target
		return nil
	})
}
