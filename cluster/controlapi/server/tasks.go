package server

import (
	"net/http"
	"sort"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/store"
)

// listTasks lists tasks, history included, of one service (?service=),
// the services of one stack (?stack=) or all, optionally on one node
// (?node=).
func (s *server) listTasks(r *http.Request) (any, error) {
	q := r.URL.Query()
	svcRef, stack, nodeRef := q.Get("service"), q.Get("stack"), q.Get("node")
	if svcRef != "" && stack != "" {
		return nil, statusf(http.StatusBadRequest, "give service or stack, not both")
	}
	out := []controlapi.Task{}
	err := s.st.View(func(tx store.ReadTx) error {
		var tasks []*api.Task
		switch {
		case svcRef != "":
			svc, err := findService(tx, svcRef)
			if err != nil {
				return err
			}
			if tasks, err = store.Find[api.Task](tx, store.ByService(svc.ID)); err != nil {
				return err
			}
		case stack != "":
			svcs, err := store.Find[api.Service](tx, store.ByStack(stack))
			if err != nil {
				return err
			}
			if len(svcs) == 0 {
				stacks, err := store.Find[api.Stack](tx, store.ByName(stack))
				if err != nil {
					return err
				}
				if len(stacks) == 0 {
					return statusf(http.StatusNotFound, "stack %q not found", stack)
				}
			}
			for _, svc := range svcs {
				ts, err := store.Find[api.Task](tx, store.ByService(svc.ID))
				if err != nil {
					return err
				}
				tasks = append(tasks, ts...)
			}
		default:
			var err error
			if tasks, err = store.Find[api.Task](tx, store.All()); err != nil {
				return err
			}
		}
		nodes, err := store.Find[api.Node](tx, store.All())
		if err != nil {
			return err
		}
		names := make(map[string]string, len(nodes))
		for _, n := range nodes {
			names[n.ID] = nodeName(n)
		}
		var onNode string
		if nodeRef != "" {
			n, err := findNode(tx, nodeRef)
			if err != nil {
				return err
			}
			onNode = n.ID
		}
		for _, t := range tasks {
			if onNode != "" && t.NodeID != onNode {
				continue
			}
			out = append(out, controlapi.Task{Task: *t, NodeName: names[t.NodeID]})
		}
		return nil
	})
	sortTasks(out)
	return out, err
}

// sortTasks orders tasks by service, slot (or node for global services),
// the live task first, then newest first.
func sortTasks(ts []controlapi.Task) {
	sort.SliceStable(ts, func(i, j int) bool {
		a, b := &ts[i], &ts[j]
		switch {
		case a.ServiceName != b.ServiceName:
			return a.ServiceName < b.ServiceName
		case a.Slot != b.Slot:
			return a.Slot < b.Slot
		case a.Slot == 0 && a.NodeID != b.NodeID: // global: one group per node
			if a.NodeName != b.NodeName {
				return a.NodeName < b.NodeName
			}
			return a.NodeID < b.NodeID
		case liveTask(&a.Task) != liveTask(&b.Task):
			return liveTask(&a.Task)
		case !a.CreatedAt.Equal(b.CreatedAt):
			return a.CreatedAt.After(b.CreatedAt)
		}
		return a.ID < b.ID
	})
}
