package orchestrator

import (
	"errors"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
)

// staleVersion is a kept earlier version of a secret or config
// (api.LabelVersionOf) that nothing refers to any more.
type staleVersion struct {
	kind store.Kind
	id   string
}

// staleVersions finds the kept versions of secrets and configs that no
// task that has not ended refers to, nor a service's spec, nor its
// previous spec while its rollout may still return to it (not completed):
// their content has no reader left. A version equal to the object's
// current content is stale too (a revert brought it back).
func staleVersions(tx store.ReadTx, services []*api.Service, tasks []*api.Task) ([]staleVersion, error) {
	secrets, err := store.Find[api.Secret](tx, store.All())
	if err != nil {
		return nil, err
	}
	configs, err := store.Find[api.Config](tx, store.All())
	if err != nil {
		return nil, err
	}
	kept := false
	for _, s := range secrets {
		kept = kept || s.VersionOf() != ""
	}
	for _, c := range configs {
		kept = kept || c.VersionOf() != ""
	}
	if !kept {
		return nil, nil // the common case: nothing to look for
	}
	usedSecrets, usedConfigs := map[string]bool{}, map[string]bool{}
	use := func(c *api.ContainerSpec) {
		for _, r := range c.Secrets {
			usedSecrets[r.Key()] = true
		}
		for _, r := range c.Configs {
			usedConfigs[r.Key()] = true
		}
	}
	for _, svc := range services {
		use(&svc.Spec.Task.Container)
		if svc.PreviousSpec != nil && (svc.Update == nil || svc.Update.State != api.UpdateCompleted) {
			use(&svc.PreviousSpec.Task.Container)
		}
	}
	for _, t := range tasks {
		if !t.Status.State.Terminal() {
			use(&t.Spec.Container)
		}
	}
	current := map[string]string{} // kind letter + name: current hash
	for _, s := range secrets {
		if s.VersionOf() == "" {
			current["s"+s.Spec.Name] = s.Spec.DataHash
		}
	}
	for _, c := range configs {
		if c.VersionOf() == "" {
			current["c"+c.Spec.Name] = c.Spec.DataHash
		}
	}
	var out []staleVersion
	for _, s := range secrets {
		if of := s.VersionOf(); of != "" && (!usedSecrets[s.Spec.Name] || current["s"+of] == s.Spec.DataHash) {
			out = append(out, staleVersion{store.KindSecret, s.ID})
		}
	}
	for _, c := range configs {
		if of := c.VersionOf(); of != "" && (!usedConfigs[c.Spec.Name] || current["c"+of] == c.Spec.DataHash) {
			out = append(out, staleVersion{store.KindConfig, c.ID})
		}
	}
	return out, nil
}

// deleteVersions deletes stale versions; one deleted meanwhile is fine.
func deleteVersions(tx store.Tx, vs []staleVersion) error {
	for _, v := range vs {
		if err := tx.Delete(v.kind, v.id, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}
