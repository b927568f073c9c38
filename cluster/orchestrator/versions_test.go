package orchestrator

import (
	"context"
	"slices"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// TestStaleVersions: a kept version of a secret or config lives while a
// task that has not ended, a service's spec, or the previous spec of a
// rollout not completed refers to it, and not after; one equal to the
// current content is stale at once.
func TestStaleVersions(t *testing.T) {
	st := storetest.New(t, storetest.Options{Managers: 1}).Store(0)
	ref := func(name, version string) []api.FileRef {
		return []api.FileRef{{Name: name, Version: version, Target: "/run/secrets/x"}}
	}
	kept := func(name, hash string) *api.Secret {
		return &api.Secret{Meta: api.Meta{ID: "v-" + name + "-" + hash}, Spec: api.SecretSpec{Name: api.VersionName(name, hash), DataHash: hash,
			Labels: map[string]string{api.LabelVersionOf: name}, Data: api.SecretBytes("old " + hash)}}
	}
	withSecrets := func(refs []api.FileRef) api.TaskSpec {
		return api.TaskSpec{Container: api.ContainerSpec{Image: "x", Secrets: refs}}
	}
	svc := &api.Service{Meta: api.Meta{ID: "svc"}, Spec: api.ServiceSpec{Name: "app_web", Task: withSecrets(ref("pw", "h3"))},
		PreviousSpec: &api.ServiceSpec{Name: "app_web", Task: withSecrets(ref("pw", "h2"))},
		Update:       &api.UpdateStatus{State: api.UpdateUpdating}}
	objs := []api.Object{
		&api.Secret{Meta: api.Meta{ID: "pw"}, Spec: api.SecretSpec{Name: "pw", DataHash: "h3", Data: api.SecretBytes("new")}},
		kept("pw", "h1"), // a running task still has it
		kept("pw", "h2"), // the rollout may go back to it
		kept("pw", "h0"), // only an ended task had it
		kept("pw", "h3"), // the current content: redundant
		&api.Config{Meta: api.Meta{ID: "v-motd"}, Spec: api.ConfigSpec{Name: api.VersionName("motd", "c1"), DataHash: "c1",
			Labels: map[string]string{api.LabelVersionOf: "motd"}}},
		svc,
		&api.Task{Meta: api.Meta{ID: "t1"}, ServiceID: "svc", Spec: withSecrets(ref("pw", "h1")), Status: api.TaskStatus{State: api.TaskRunning}, DesiredState: api.TaskRunning},
		&api.Task{Meta: api.Meta{ID: "t0"}, ServiceID: "svc", Spec: withSecrets(ref("pw", "h0")), Status: api.TaskStatus{State: api.TaskShutdown}, DesiredState: api.TaskShutdown},
	}
	if _, err := st.Update(context.Background(), func(tx store.Tx) error {
		for _, o := range objs {
			if err := tx.Create(o); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stale := func() []string {
		t.Helper()
		var out []string
		err := st.View(func(tx store.ReadTx) error {
			svcs, err := store.Find[api.Service](tx, store.All())
			if err != nil {
				return err
			}
			tasks, err := store.Find[api.Task](tx, store.All())
			if err != nil {
				return err
			}
			vs, err := staleVersions(tx, svcs, tasks)
			for _, v := range vs {
				out = append(out, v.id)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		return out
	}
	if got, want := stale(), []string{"v-motd", "v-pw-h0", "v-pw-h3"}; !slices.Equal(got, want) {
		t.Errorf("stale during the rollout = %v, want %v", got, want)
	}
	// The rollout completes and the old task ends: h1 and h2 go too.
	if _, err := st.Update(context.Background(), func(tx store.Tx) error {
		s, err := store.Get[api.Service](tx, "svc")
		if err != nil {
			return err
		}
		s.Update.State = api.UpdateCompleted
		if err := tx.Update(s); err != nil {
			return err
		}
		task, err := store.Get[api.Task](tx, "t1")
		if err != nil {
			return err
		}
		task.Status.State, task.DesiredState = api.TaskShutdown, api.TaskShutdown
		return tx.Update(task)
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := stale(), []string{"v-motd", "v-pw-h0", "v-pw-h1", "v-pw-h2", "v-pw-h3"}; !slices.Equal(got, want) {
		t.Errorf("stale after the rollout = %v, want %v", got, want)
	}
}
