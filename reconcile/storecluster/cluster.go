package storecluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/reconcile"
)

// SyncStateID is the ID of the cluster's one SyncState object.
const SyncStateID = "sync"

// Store is what Cluster needs of *store.Store.
type Store interface {
	View(fn func(store.ReadTx) error) error
	Update(ctx context.Context, fn func(store.Tx) error) (uint64, error)
}

var _ Store = (*store.Store)(nil)

// Cluster is reconcile.Cluster over a store.
type Cluster struct {
	st Store
}

var (
	_ reconcile.Cluster = (*Cluster)(nil)
	_ reconcile.Barrier = (*Cluster)(nil)
)

// New returns a Cluster over st.
func New(st Store) *Cluster { return &Cluster{st: st} }

// Actual returns the specs of every network, secret, config, volume and
// service, without secret data.
func (c *Cluster) Actual(ctx context.Context) (reconcile.State, error) {
	var s reconcile.State
	err := c.st.View(func(tx store.ReadTx) error {
		nets, err := store.Find[api.Network](tx, store.All())
		if err != nil {
			return err
		}
		for _, n := range nets {
			s.Networks = append(s.Networks, n.Spec)
		}
		secs, err := store.Find[api.Secret](tx, store.All())
		if err != nil {
			return err
		}
		for _, x := range secs {
			if x.VersionOf() != "" {
				continue // an earlier version, the orchestrator's to delete
			}
			x.Spec.Data = nil
			s.Secrets = append(s.Secrets, x.Spec)
		}
		cfgs, err := store.Find[api.Config](tx, store.All())
		if err != nil {
			return err
		}
		for _, x := range cfgs {
			if x.VersionOf() == "" {
				s.Configs = append(s.Configs, x.Spec)
			}
		}
		vols, err := store.Find[api.Volume](tx, store.All())
		if err != nil {
			return err
		}
		for _, v := range vols {
			s.Volumes = append(s.Volumes, v.Spec)
		}
		svcs, err := store.Find[api.Service](tx, store.All())
		if err != nil {
			return err
		}
		for _, x := range svcs {
			s.Services = append(s.Services, x.Spec)
		}
		nodes, err := store.Find[api.Node](tx, store.All())
		if err != nil {
			return err
		}
		s.Reserved = reservedPorts(nodes)
		s.Policies = nodePolicies(nodes)
		switch cl, err := store.Get[api.Cluster](tx, api.ClusterID); {
		case err == nil:
			s.Pools = &cl.Spec.Network
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		return nil
	})
	if err != nil {
		return reconcile.State{}, fmt.Errorf("read cluster state: %w", err)
	}
	return s, nil
}

// reservedPorts are the ports the nodes listen on for the cluster
// itself, as they advertise them: WireGuard (udp) on every node, the API
// and Raft (tcp) on managers. A removed node's ports are free again.
func reservedPorts(nodes []*api.Node) []reconcile.ReservedPort {
	var out []reconcile.ReservedPort
	seen := map[reconcile.ReservedPort]bool{}
	add := func(proto api.Protocol, port uint32, use string) {
		r := reconcile.ReservedPort{Protocol: proto, Port: port, Use: use}
		if port != 0 && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	addrPort := func(addr string) uint32 {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return 0
		}
		return uint32(ap.Port())
	}
	for _, n := range nodes {
		if n.Removed() {
			continue
		}
		if wg := n.Description.WireGuard; wg != nil {
			add(api.ProtocolUDP, uint32(wg.Port), "WireGuard between nodes")
		}
		if m := n.Manager; m != nil {
			add(api.ProtocolTCP, addrPort(m.Addr), "the managers' API")
			add(api.ProtocolTCP, addrPort(m.RaftAddr), "Raft between managers")
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Protocol != out[j].Protocol {
			return out[i].Protocol < out[j].Protocol
		}
		return out[i].Port < out[j].Port
	})
	return out
}

// Observe returns each named service and its tasks.
func (c *Cluster) Observe(ctx context.Context, names []string) (map[string]reconcile.Observed, error) {
	out := map[string]reconcile.Observed{}
	err := c.st.View(func(tx store.ReadTx) error {
		for _, name := range names {
			svcs, err := store.Find[api.Service](tx, store.ByName(name))
			if err != nil {
				return err
			}
			if len(svcs) == 0 {
				out[name] = reconcile.Observed{}
				continue
			}
			tasks, err := store.Find[api.Task](tx, store.ByService(svcs[0].ID))
			if err != nil {
				return err
			}
			o := reconcile.Observed{Service: svcs[0]}
			for _, t := range tasks {
				o.Tasks = append(o.Tasks, *t)
			}
			out[name] = o
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("observe services: %w", err)
	}
	return out, nil
}

// Sync returns the sync state, zero when none was written.
func (c *Cluster) Sync(ctx context.Context) (api.SyncState, error) {
	var s api.SyncState
	err := c.st.View(func(tx store.ReadTx) error {
		got, err := store.Get[api.SyncState](tx, SyncStateID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		s = *got
		return nil
	})
	if err != nil {
		return api.SyncState{}, fmt.Errorf("read sync state: %w", err)
	}
	return s, nil
}

// Barrier waits until every write committed before the call is visible
// to this manager's reads (reconcile.Barrier), when the store can.
func (c *Cluster) Barrier(ctx context.Context) error {
	if b, ok := c.st.(interface{ Barrier(context.Context) error }); ok {
		return b.Barrier(ctx)
	}
	return nil
}

// History returns the sync records, oldest first (by StartedAt, then by
// ID, which the controller makes sortable).
func (c *Cluster) History(ctx context.Context) ([]api.SyncRecord, error) {
	var out []api.SyncRecord
	err := c.st.View(func(tx store.ReadTx) error {
		recs, err := store.Find[api.SyncRecord](tx, store.All())
		if err != nil {
			return err
		}
		for _, r := range recs {
			out = append(out, *r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read sync history: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].StartedAt.Equal(out[j].StartedAt) {
			return out[i].StartedAt.Before(out[j].StartedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Commit writes the commit in one store transaction. The transaction's
// reads see the state before it, so objects are looked up by name once and
// each written once.
func (c *Cluster) Commit(ctx context.Context, cm reconcile.Commit) error {
	// A controller that wrote one of the objects between this
	// transaction's reads and its commit (the allocator filling in a new
	// service's endpoint) makes it conflict: it runs again on what is
	// there now, so a stack deploy or rm right after another never fails
	// for it.
	// So does one that created an object this one creates too (the sync
	// state of a cluster's first deploys, made at once): run again, it
	// updates what is there.
	err := store.RetryConflicts(5, func() error {
		err := c.commit(ctx, cm)
		if errors.Is(err, store.ErrExists) {
			return store.ErrVersionConflict
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (c *Cluster) commit(ctx context.Context, cm reconcile.Commit) error {
	_, err := c.st.Update(ctx, func(tx store.Tx) error {
		w := writer{tx: tx}
		p := cm.Put
		for _, n := range p.Networks {
			w.network(n)
		}
		for _, s := range p.Secrets {
			w.secret(s)
		}
		for _, x := range p.Configs {
			w.config(x)
		}
		for _, v := range p.Volumes {
			w.volume(v)
		}
		for _, s := range p.Services {
			w.service(s)
		}
		for _, d := range cm.Delete {
			w.delete(d)
		}
		w.syncState(cm.State, cm.Base)
		created := 0
		for _, r := range cm.Records {
			if w.record(r) {
				created++
			}
		}
		if created > 0 {
			w.trimHistory(created)
		}
		return w.err
	})
	return err
}

// writer adds a commit's operations to a transaction, keeping the first
// error.
type writer struct {
	tx  store.Tx
	err error
}

func (w *writer) fail(err error) {
	if w.err == nil && err != nil {
		w.err = err
	}
}

// one returns the object of type T with that name, nil when none.
func one[T any, P interface {
	*T
	api.Object
}](w *writer, name string) P {
	if w.err != nil {
		return nil
	}
	got, err := store.Find[T, P](w.tx, store.ByName(name))
	if err != nil {
		w.fail(err)
		return nil
	}
	if len(got) == 0 {
		return nil
	}
	return got[0]
}

func (w *writer) network(spec api.NetworkSpec) {
	if cur := one[api.Network](w, spec.Name); cur != nil {
		cur.Spec = spec
		w.fail(w.tx.Update(cur))
	} else if w.err == nil {
		w.fail(w.tx.Create(&api.Network{Spec: spec}))
	}
}

// secret writes a secret; when its content changes, the content it had
// is kept as an object of its own (api.VersionName), for the tasks that
// still refer to it until they are replaced and for a rollback to the
// previous spec. The orchestrator deletes it once nothing refers to it.
func (w *writer) secret(spec api.SecretSpec) {
	if cur := one[api.Secret](w, spec.Name); cur != nil {
		if old := cur.Spec; old.DataHash != "" && old.DataHash != spec.DataHash &&
			one[api.Secret](w, api.VersionName(old.Name, old.DataHash)) == nil && w.err == nil {
			kept := api.SecretSpec{Name: api.VersionName(old.Name, old.DataHash), Stack: old.Stack,
				Labels: versionLabels(old.Labels, old.Name), DataHash: old.DataHash, Data: old.Data}
			w.fail(w.tx.Create(&api.Secret{Spec: kept}))
		}
		cur.Spec = spec
		w.fail(w.tx.Update(cur))
	} else if w.err == nil {
		w.fail(w.tx.Create(&api.Secret{Spec: spec}))
	}
}

// config writes a config, keeping the content it had as secret does.
func (w *writer) config(spec api.ConfigSpec) {
	if cur := one[api.Config](w, spec.Name); cur != nil {
		if old := cur.Spec; old.DataHash != "" && old.DataHash != spec.DataHash &&
			one[api.Config](w, api.VersionName(old.Name, old.DataHash)) == nil && w.err == nil {
			kept := api.ConfigSpec{Name: api.VersionName(old.Name, old.DataHash), Stack: old.Stack,
				Labels: versionLabels(old.Labels, old.Name), DataHash: old.DataHash, Data: old.Data}
			w.fail(w.tx.Create(&api.Config{Spec: kept}))
		}
		cur.Spec = spec
		w.fail(w.tx.Update(cur))
	} else if w.err == nil {
		w.fail(w.tx.Create(&api.Config{Spec: spec}))
	}
}

// versionLabels are the labels of a kept version: the object's own but
// gitorc's ownership (no plan sees it), and LabelVersionOf.
func versionLabels(labels map[string]string, of string) map[string]string {
	out := map[string]string{api.LabelVersionOf: of}
	for k, v := range labels {
		if k != api.LabelManagedBy && k != api.LabelRevision && k != api.LabelStack {
			out[k] = v
		}
	}
	return out
}

func (w *writer) volume(spec api.VolumeSpec) {
	if cur := one[api.Volume](w, spec.Name); cur != nil {
		cur.Spec = spec
		w.fail(w.tx.Update(cur))
	} else if w.err == nil {
		w.fail(w.tx.Create(&api.Volume{Spec: spec}))
	}
}

// service replaces a service's spec, keeping the old one as PreviousSpec
// (what a rollback returns to) and dropping the status of the previous
// rollout: the orchestrator starts a new one for the new spec.
func (w *writer) service(spec api.ServiceSpec) {
	if cur := one[api.Service](w, spec.Name); cur != nil {
		prev := cur.Spec
		cur.PreviousSpec, cur.Spec, cur.Update = &prev, spec, nil
		w.fail(w.tx.Update(cur))
	} else if w.err == nil {
		w.fail(w.tx.Create(&api.Service{Spec: spec}))
	}
}

func (w *writer) delete(r reconcile.Ref) {
	var obj api.Object
	var kind store.Kind
	switch r.Kind {
	case reconcile.KindNetwork:
		kind, obj = store.KindNetwork, asObject(one[api.Network](w, r.Name))
	case reconcile.KindSecret:
		kind, obj = store.KindSecret, asObject(one[api.Secret](w, r.Name))
	case reconcile.KindConfig:
		kind, obj = store.KindConfig, asObject(one[api.Config](w, r.Name))
	case reconcile.KindVolume:
		kind, obj = store.KindVolume, asObject(one[api.Volume](w, r.Name))
	case reconcile.KindService:
		kind, obj = store.KindService, asObject(one[api.Service](w, r.Name))
	default:
		w.fail(fmt.Errorf("delete %s: unknown kind", r.Name))
		return
	}
	if obj == nil || w.err != nil {
		return // already gone
	}
	m := obj.GetMeta()
	w.fail(w.tx.Delete(kind, m.ID, m.Version))
}

// asObject keeps a typed nil pointer from becoming a non-nil interface.
func asObject[P interface {
	comparable
	api.Object
}](p P) api.Object {
	var zero P
	if p == zero {
		return nil
	}
	return p
}

// syncState writes the sync state; with a base, merged onto the stored
// one inside this transaction (reconcile.MergeSyncState).
func (w *writer) syncState(s api.SyncState, base *api.SyncState) {
	if w.err != nil {
		return
	}
	cur, err := store.Get[api.SyncState](w.tx, SyncStateID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.Meta = api.Meta{ID: SyncStateID}
		w.fail(w.tx.Create(&s))
	case err != nil:
		w.fail(err)
	default:
		if base != nil {
			s = reconcile.MergeSyncState(*base, s, *cur)
		}
		keepControl(&s, cur) // control.go: changed by UpdateSync only
		s.Meta = cur.Meta
		w.fail(w.tx.Update(&s))
	}
}

// record writes a history record and reports whether it is a new one.
func (w *writer) record(r api.SyncRecord) bool {
	if w.err != nil {
		return false
	}
	if r.ID == "" {
		w.fail(w.tx.Create(&r))
		return true
	}
	cur, err := store.Get[api.SyncRecord](w.tx, r.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		w.fail(w.tx.Create(&r))
		return true
	case err != nil:
		w.fail(err)
	default:
		r.Meta = cur.Meta
		if r.Notified == "" {
			r.Notified = cur.Notified // the notifier's mark, not the controller's to clear
		}
		w.fail(w.tx.Update(&r))
	}
	return false
}

// HistoryLimit is how many sync records the store keeps: the oldest go
// when new ones would pass it (self-heal and polls add records for as
// long as the cluster runs).
const HistoryLimit = 200

// trimHistory deletes the oldest records beyond HistoryLimit, counting
// the added ones this transaction creates (its reads do not see them).
func (w *writer) trimHistory(added int) {
	if w.err != nil {
		return
	}
	recs, err := store.Find[api.SyncRecord](w.tx, store.All())
	if err != nil {
		w.fail(err)
		return
	}
	extra := len(recs) + added - HistoryLimit
	if extra <= 0 {
		return
	}
	sort.Slice(recs, func(i, j int) bool {
		if !recs[i].StartedAt.Equal(recs[j].StartedAt) {
			return recs[i].StartedAt.Before(recs[j].StartedAt)
		}
		return recs[i].ID < recs[j].ID
	})
	for _, r := range recs[:min(extra, len(recs))] {
		w.fail(w.tx.Delete(store.KindSyncRecord, r.ID, r.Version))
	}
}

// nodePolicies are the policies of the nodes that are not removed, as
// they report them (none: the default policy).
func nodePolicies(nodes []*api.Node) []api.NodePolicy {
	out := []api.NodePolicy{}
	for _, n := range nodes {
		if n.Removed() {
			continue
		}
		var p api.NodePolicy
		if n.Description.Policy != nil {
			p = *n.Description.Policy
		}
		out = append(out, p)
	}
	return out
}
