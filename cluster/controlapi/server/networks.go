package server

import (
	"errors"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/store"
)

// findNetwork resolves a network by ID or name.
func findNetwork(tx store.ReadTx, ref string) (*api.Network, error) {
	n, err := store.Get[api.Network](tx, ref)
	if err == nil {
		return n, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	byName, err := store.Find[api.Network](tx, store.ByName(ref))
	if err != nil {
		return nil, err
	}
	if len(byName) == 0 {
		return nil, statusf(http.StatusNotFound, "network %q not found", ref)
	}
	return byName[0], nil
}

// listNetworks lists every network with its services and task addresses.
func (s *server) listNetworks(r *http.Request) (any, error) {
	out := []controlapi.Network{}
	err := s.st.View(func(tx store.ReadTx) error {
		nets, err := store.Find[api.Network](tx, store.All())
		if err != nil {
			return err
		}
		ix, err := readNetIndex(tx)
		if err != nil {
			return err
		}
		for _, n := range nets {
			out = append(out, ix.network(n))
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out, err
}

// getNetwork shows one network.
func (s *server) getNetwork(r *http.Request) (any, error) {
	var out controlapi.Network
	err := s.st.View(func(tx store.ReadTx) error {
		n, err := findNetwork(tx, r.PathValue("network"))
		if err != nil {
			return err
		}
		ix, err := readNetIndex(tx)
		if err != nil {
			return err
		}
		out = ix.network(n)
		return nil
	})
	return out, err
}

// netIndex is what the network views are made of.
type netIndex struct {
	services []*api.Service
	tasks    map[string][]*api.Task // live tasks by service ID
	names    map[string]string      // node names by ID
}

func readNetIndex(tx store.ReadTx) (*netIndex, error) {
	svcs, err := store.Find[api.Service](tx, store.All())
	if err != nil {
		return nil, err
	}
	tasks, err := store.Find[api.Task](tx, store.All())
	if err != nil {
		return nil, err
	}
	nodes, err := store.Find[api.Node](tx, store.All())
	if err != nil {
		return nil, err
	}
	ix := &netIndex{services: svcs, tasks: map[string][]*api.Task{}, names: map[string]string{}}
	for _, n := range nodes {
		ix.names[n.ID] = nodeName(n)
	}
	for _, t := range tasks {
		if t.Addr != "" && !t.Status.State.Terminal() {
			ix.tasks[t.ServiceID] = append(ix.tasks[t.ServiceID], t)
		}
	}
	return ix, nil
}

// network is n with the services attached to it and their tasks.
func (ix *netIndex) network(n *api.Network) controlapi.Network {
	out := controlapi.Network{Network: *n, Services: []controlapi.NetworkService{}, Tasks: []controlapi.NetworkTask{}}
	for _, svc := range ix.services {
		i := slices.IndexFunc(svc.Spec.Networks, func(a api.NetworkAttachment) bool { return a.Target == n.Spec.Name })
		if i < 0 {
			continue
		}
		ns := controlapi.NetworkService{Name: svc.Spec.Name, Aliases: svc.Spec.Networks[i].Aliases, Mode: svc.Spec.Endpoint.Mode.String()}
		if svc.Endpoint != nil {
			ns.VIP = svc.Endpoint.VIP
		}
		if svc.Spec.Stack != "" {
			ns.Aliases = append([]string{strings.TrimPrefix(svc.Spec.Name, svc.Spec.Stack+"_")}, ns.Aliases...)
		}
		out.Services = append(out.Services, ns)
		for _, t := range ix.tasks[svc.ID] {
			out.Tasks = append(out.Tasks, controlapi.NetworkTask{ID: t.ID, Name: taskName(t, ix.names[t.NodeID]), Service: svc.Spec.Name,
				Node: ix.names[t.NodeID], Addr: t.Addr, State: t.Status.State.String(), InLoadBalancer: t.InLoadBalancer()})
		}
	}
	sort.Slice(out.Services, func(i, j int) bool { return out.Services[i].Name < out.Services[j].Name })
	sort.Slice(out.Tasks, func(i, j int) bool { return out.Tasks[i].Name < out.Tasks[j].Name })
	return out
}

// taskName is docker's "service.slot", or "service.node" for a global
// service's task.
func taskName(t *api.Task, node string) string {
	if t.Slot == 0 {
		if node == "" {
			node = t.NodeID
		}
		return t.ServiceName + "." + node
	}
	return t.ServiceName + "." + strconv.FormatUint(t.Slot, 10)
}
