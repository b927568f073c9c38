package dispatcher_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/gitorc/gitorc/cluster/store"
)

// A node removed from the cluster keeps a valid certificate, but its
// session is refused and it is not registered again.
func TestRemovedNodeRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.create(&api.Node{Meta: api.Meta{ID: "gone"}, Spec: api.NodeSpec{Role: api.RoleWorker},
		RemovedAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)})
	_, _, err := e.rawSession(clientTLS(t, e.root, e.cert("gone", api.RoleWorker)), "gone")
	if err == nil || !strings.Contains(err.Error(), "removed from the cluster") {
		t.Fatalf("session of a removed node: %v, want refused", err)
	}
	if n := e.node("gone"); n == nil || n.Status.State == api.NodeReady {
		t.Errorf("removed node = %+v, want its tombstone, not ready", n)
	}
}

// The cluster's own secrets never reach a task, even one that names them.
func TestInternalSecretNeverDelivered(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.create(
		&api.Secret{Spec: api.SecretSpec{Name: "ca-key", Labels: map[string]string{api.LabelInternal: "true"}, Data: api.SecretBytes("private")}},
		&api.Secret{Spec: api.SecretSpec{Name: "db", Data: api.SecretBytes("pw")}},
		newTask("t1", "w1", "ca-key", "db"))
	stream, _, err := e.rawSession(clientTLS(t, e.root, e.cert("w1", api.RoleWorker)), "w1")
	if err != nil {
		t.Fatal(err)
	}
	var m *wire.ManagerMessage
	for m == nil || m.Assignments == nil || len(m.Assignments.Tasks) == 0 {
		if m, err = stream.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for _, s := range m.Assignments.Secrets {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "db" {
		t.Errorf("secrets delivered: %v, want only db", names)
	}
}

// A node removed while its session is open (gitorc node rm --force) has
// that session ended, with the reason, instead of receiving more.
func TestRemovedNodeSessionEnds(t *testing.T) {
	e := newEnv(t, envOptions{})
	stream, _, err := e.rawSession(clientTLS(t, e.root, e.cert("w9", api.RoleWorker)), "w9")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "w9 ready", func() bool { return e.nodeState("w9") == api.NodeReady })
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if _, err := e.store.Update(ctx, func(tx store.Tx) error {
		n, err := store.Get[api.Node](tx, "w9")
		if err != nil {
			return err
		}
		n.RemovedAt = time.Now()
		return tx.Update(n)
	}); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := stream.Recv()
		if err == nil {
			continue // what was on its way
		}
		if !strings.Contains(err.Error(), "removed from the cluster") {
			t.Errorf("the session ended with %v, want the node's removal", err)
		}
		break
	}
}
