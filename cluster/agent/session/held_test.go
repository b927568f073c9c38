package session

import (
	"errors"
	"slices"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
)

// A delta applies on top of the set it follows: changed and removed
// tasks, and a changed secret re-sends the tasks that use it. A delta out
// of order, or before any complete set, changes nothing and fails.
func TestHeldAppliesDeltasInOrder(t *testing.T) {
	web := &api.Task{Meta: api.Meta{ID: "web"}}
	web.Spec.Container.Secrets = []api.FileRef{{Name: "pw"}}
	job := &api.Task{Meta: api.Meta{ID: "job"}}
	var h Held
	if _, err := h.Apply(&wire.AssignmentSet{Delta: true, Seq: 1}); !errors.Is(err, ErrAssignmentOrder) {
		t.Fatalf("delta before a complete set: %v, want ErrAssignmentOrder", err)
	}
	ch, err := h.Apply(&wire.AssignmentSet{Seq: 1, Tasks: []*api.Task{web, job},
		Secrets: []wire.SecretFile{{Name: "pw", Data: wire.Plaintext("one")}}})
	if err != nil || !ch.Complete {
		t.Fatalf("complete set: %+v, %v", ch, err)
	}

	ch, err = h.Apply(&wire.AssignmentSet{Delta: true, Seq: 2, Secrets: []wire.SecretFile{{Name: "pw", Data: wire.Plaintext("two")}},
		RemovedTasks: []string{"job"}})
	if err != nil || ch.Complete || !slices.Equal(ch.Tasks, []string{"web"}) || !slices.Equal(ch.Removed, []string{"job"}) {
		t.Fatalf("delta 2: %+v, %v; want web changed (its secret), job removed", ch, err)
	}
	as := h.Assignments()
	if len(as) != 1 || as[0].Task.ID != "web" || string(as[0].Files.Secrets["pw"].Reveal()) != "two" {
		t.Fatalf("held after delta 2: %+v; want web with pw=two", as)
	}

	if _, err := h.Apply(&wire.AssignmentSet{Delta: true, Seq: 4, Tasks: []*api.Task{job}}); !errors.Is(err, ErrAssignmentOrder) {
		t.Fatalf("delta 4 after 2: %v, want ErrAssignmentOrder", err)
	}
	if as := h.Assignments(); len(as) != 1 {
		t.Errorf("a refused delta changed the set: %d tasks", len(as))
	}
}
