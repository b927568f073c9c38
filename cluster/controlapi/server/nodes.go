package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/store"
)

// findNode resolves a node by ID, name (or hostname) or unique ID prefix.
// Removed nodes (tombstones) are not found.
func findNode(tx store.ReadTx, ref string) (*api.Node, error) {
	n, err := store.Get[api.Node](tx, ref)
	if err == nil && !n.Removed() {
		return n, nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	byName, err := store.Find[api.Node](tx, store.ByName(ref))
	if err != nil {
		return nil, err
	}
	byName = slices.DeleteFunc(byName, (*api.Node).Removed)
	switch len(byName) {
	case 1:
		return byName[0], nil
	case 0:
	default:
		return nil, statusf(http.StatusBadRequest, "node name %q is ambiguous: use an ID", ref)
	}
	all, err := store.Find[api.Node](tx, store.All())
	if err != nil {
		return nil, err
	}
	var match *api.Node
	for _, n := range all {
		if ref != "" && strings.HasPrefix(n.ID, ref) && !n.Removed() {
			if match != nil {
				return nil, statusf(http.StatusBadRequest, "node ID prefix %q is ambiguous", ref)
			}
			match = n
		}
	}
	if match == nil {
		return nil, statusf(http.StatusNotFound, "node %q not found", ref)
	}
	return match, nil
}

func nodeName(n *api.Node) string {
	if n.Spec.Name != "" {
		return n.Spec.Name
	}
	return n.Description.Hostname
}

// liveTask reports whether a task is meant to run and has not ended.
func liveTask(t *api.Task) bool {
	return t.DesiredState <= api.TaskRunning && !t.Status.State.Terminal()
}

func (s *server) nodeView(tx store.ReadTx, n *api.Node) (controlapi.Node, error) {
	tasks, err := store.Find[api.Task](tx, store.ByNode(n.ID))
	if err != nil {
		return controlapi.Node{}, err
	}
	v := controlapi.Node{Node: *n, Name: nodeName(n), Policy: n.Description.Policy.Effective()}
	if n.Manager != nil && s.leader != nil {
		m := *n.Manager
		m.Leader = n.ID == s.leader()
		v.Manager = &m
	}
	for _, t := range tasks {
		if liveTask(t) {
			v.Tasks++
		}
	}
	return v, nil
}

func (s *server) listNodes(*http.Request) (any, error) {
	out := []controlapi.Node{}
	err := s.st.View(func(tx store.ReadTx) error {
		nodes, err := store.Find[api.Node](tx, store.All())
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if n.Removed() {
				continue
			}
			v, err := s.nodeView(tx, n)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ID < out[j].ID
	})
	return out, err
}

func (s *server) getNode(r *http.Request) (any, error) {
	var out controlapi.Node
	err := s.view(r, func(tx store.ReadTx) error {
		n, err := findNode(tx, r.PathValue("node"))
		if err != nil {
			return err
		}
		out, err = s.nodeView(tx, n)
		return err
	})
	return out, err
}

// applyNodeUpdate checks a node update and applies it to n.
func applyNodeUpdate(u *controlapi.NodeUpdate, n *api.Node) error {
	if u.Availability != "" {
		a, err := api.ParseNodeAvailability(u.Availability)
		if err != nil {
			return statusf(http.StatusBadRequest, "%v", err)
		}
		n.Spec.Availability = a
	}
	if u.Role != "" {
		role, err := api.ParseNodeRole(u.Role)
		if err != nil {
			return statusf(http.StatusBadRequest, "%v", err)
		}
		n.Spec.Role = role
	}
	for _, k := range u.LabelRm {
		if _, ok := n.Spec.Labels[k]; !ok {
			return statusf(http.StatusBadRequest, "node %s has no label %q", nodeName(n), k)
		}
		delete(n.Spec.Labels, k)
	}
	for k, v := range u.LabelAdd {
		if k == "" || strings.ContainsAny(k, "= \t\n") {
			return statusf(http.StatusBadRequest, "invalid label key %q", k)
		}
		if n.Spec.Labels == nil {
			n.Spec.Labels = map[string]string{}
		}
		n.Spec.Labels[k] = v
	}
	return nil
}

func (s *server) updateNode(r *http.Request) (any, error) {
	var u controlapi.NodeUpdate
	if err := decode(r, &u); err != nil {
		return nil, err
	}
	want, err := wantVersion(r)
	if err != nil {
		return nil, err
	}
	var id string
	err = s.write(r, func(tx store.Tx) error {
		n, err := findNode(tx, r.PathValue("node"))
		if err != nil {
			return err
		}
		if err := checkVersion("node", nodeName(n), want, n.Version); err != nil {
			return err
		}
		id = n.ID
		wasManager := n.Spec.Role == api.RoleManager
		if err := applyNodeUpdate(&u, n); err != nil {
			return err
		}
		if wasManager && n.Spec.Role != api.RoleManager {
			if err := lastManager(tx, n.ID); err != nil {
				return err
			}
		}
		return tx.Update(n)
	})
	if err != nil {
		return nil, err
	}
	return s.getNodeByID(id)
}

// lastManager refuses to demote the cluster's last manager.
func lastManager(tx store.ReadTx, id string) error {
	nodes, err := store.Find[api.Node](tx, store.All())
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if n.ID != id && n.Spec.Role == api.RoleManager && !n.Removed() {
			return nil
		}
	}
	return statusf(http.StatusConflict, "node %s is the last manager: promote another node first", id)
}

func (s *server) getNodeByID(id string) (any, error) {
	var out controlapi.Node
	err := s.st.View(func(tx store.ReadTx) error {
		n, err := store.Get[api.Node](tx, id)
		if err != nil {
			return err
		}
		out, err = s.nodeView(tx, n)
		return err
	})
	return out, err
}

// removeNode deletes a node that is gone. A ready node must be forced
// (it would come back on its next heartbeat otherwise, or lose its
// tasks); a manager must be demoted first, since its Raft membership is
// not this API's to change.
func (s *server) removeNode(r *http.Request) (any, error) {
	force := r.URL.Query().Has("force") && r.URL.Query().Get("force") != "0" && r.URL.Query().Get("force") != "false"
	want, err := wantVersion(r)
	if err != nil {
		return nil, err
	}
	var removed controlapi.Node
	err = s.write(r, func(tx store.Tx) error {
		n, err := findNode(tx, r.PathValue("node"))
		if err != nil {
			return err
		}
		if err := checkVersion("node", nodeName(n), want, n.Version); err != nil {
			return err
		}
		if n.Spec.Role == api.RoleManager || n.Manager != nil {
			return statusf(http.StatusConflict, "node %s is a manager: demote it before removing it", nodeName(n))
		}
		if n.Status.State == api.NodeReady && !force {
			return statusf(http.StatusConflict, "node %s is ready: stop it first, or remove it with --force", nodeName(n))
		}
		if removed, err = s.nodeView(tx, n); err != nil {
			return err
		}
		// A tombstone: the node's certificate stays valid until it
		// expires, and must open nothing. Its tasks are moved away as a
		// down node's are.
		n.RemovedAt = s.now().UTC()
		n.Status.State, n.Status.Message = api.NodeDown, "removed from the cluster"
		n.Spec.Availability = api.AvailabilityDrain
		return tx.Update(n)
	})
	if err != nil {
		return nil, fmt.Errorf("remove node: %w", err)
	}
	return removed, nil
}

// consistentStore is a Store that can read linearizably.
type consistentStore interface {
	ConsistentView(ctx context.Context, fn func(store.ReadTx) error) error
}

// view reads the local replica, or with ?consistent=1 after a barrier
// through the leader (a linearizable read: it holds every write that
// completed anywhere before the request; the chaos test's register
// checks use it).
func (s *server) view(r *http.Request, fn func(store.ReadTx) error) error {
	if !r.URL.Query().Has("consistent") {
		return s.st.View(fn)
	}
	cs, ok := s.st.(consistentStore)
	if !ok {
		return statusf(http.StatusBadRequest, "consistent reads are not supported here")
	}
	return cs.ConsistentView(r.Context(), fn)
}
