package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/hashicorp/go-memdb"
)

// ReadTx is a consistent, immutable view of the state at one Raft index.
// Every object it returns is a fresh copy the caller owns; secrets come
// with their payload opened.
type ReadTx interface {
	// Index is the Raft index of the last entry the view reflects.
	Index() uint64
	// Get returns the object of that kind and ID, or ErrNotFound.
	Get(kind Kind, id string) (api.Object, error)
	// Find returns the objects of a kind that match by, in index order.
	Find(kind Kind, by By) ([]api.Object, error)
}

// Tx is a transaction being built. Its reads see the state at the start
// of the transaction, not its own pending changes. The changes are checked
// and applied atomically when the transaction commits.
type Tx interface {
	ReadTx
	// Create stores a new object. An empty ID is filled with a new one (idSeq);
	// CreatedAt and UpdatedAt are set to the transaction's time, and
	// Version to the commit index once the transaction commits.
	Create(obj api.Object) error
	// Update replaces an object. obj.Version must be the stored version:
	// a stale one makes the whole transaction fail with ErrVersionConflict.
	// A secret updated with nil Data keeps its stored payload.
	Update(obj api.Object) error
	// Delete removes an object. version 0 deletes whatever is stored;
	// otherwise it must match like an update's.
	Delete(kind Kind, id string, version uint64) error
}

// By selects objects through an index.
type By struct {
	index string
	value string
}

// All selects every object of the kind, in id index order: store-made IDs
// come in creation order (to the millisecond), see idKey.
func All() By { return By{index: idxID} }

// ByName selects objects by name (spec name; a node's name or hostname).
func ByName(name string) By { return By{idxName, name} }

// ByStack selects stacks, services, networks, volumes, secrets and configs of a stack.
func ByStack(stack string) By { return By{idxStack, stack} }

// ByService selects the tasks of a service ID.
func ByService(serviceID string) By { return By{idxService, serviceID} }

// ByNode selects the tasks on a node ID.
func ByNode(nodeID string) By { return By{idxNode, nodeID} }

// ByDesiredState selects tasks by desired state.
func ByDesiredState(s api.TaskState) By { return By{idxDesired, s.String()} }

type readTx struct {
	txn   *memdb.Txn
	index uint64
	key   *DataKey
}

var _ ReadTx = (*readTx)(nil)

func (r *readTx) Index() uint64 { return r.index }

func (r *readTx) Get(kind Kind, id string) (api.Object, error) {
	if !kind.valid() {
		return nil, fmt.Errorf("get %s: %w: unknown kind", kind, ErrInvalid)
	}
	rec, err := getRecord(r.txn, kind, id)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("get %s %s: %w", kind, id, ErrNotFound)
	}
	return r.object(rec)
}

// object returns a copy of rec's object that the caller owns, with a
// secret's payload opened: the payload is set on the copy only, never on
// the object the record caches.
func (r *readTx) object(rec *record) (api.Object, error) {
	obj, err := rec.object()
	if err != nil {
		return nil, err
	}
	if s, ok := obj.(*api.Secret); ok && rec.Sealed != nil {
		plain, err := open((*[32]byte)(r.key), rec.Sealed)
		if err != nil {
			return nil, fmt.Errorf("open secret %s: %w", rec.ID, err)
		}
		s.Spec.Data = plain
	}
	return obj, nil
}

func (r *readTx) Find(kind Kind, by By) ([]api.Object, error) {
	return r.find(kind, by, r.object)
}

// find returns what obj makes of each record that matches by.
func (r *readTx) find(kind Kind, by By, obj func(*record) (api.Object, error)) ([]api.Object, error) {
	if !kind.valid() || by.index == "" {
		return nil, fmt.Errorf("find %s: %w: unknown kind or index", kind, ErrInvalid)
	}
	if by.index != idxID && !slices.Contains(kind.secondaryIndexes(), by.index) {
		return nil, fmt.Errorf("find %s by %s: %w: %s has no such index", kind, by.index, ErrInvalid, kind)
	}
	var args []any
	if by.index != idxID {
		args = []any{by.value}
	}
	it, err := r.txn.Get(kind.String(), by.index, args...)
	if err != nil {
		return nil, fmt.Errorf("find %s by %s: %w", kind, by.index, err)
	}
	var out []api.Object
	for raw := it.Next(); raw != nil; raw = it.Next() {
		o, err := obj(raw.(*record))
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// SharedFinder is an optional ReadTx ability: finding objects without
// copying them. The objects are the store's own decoded ones, shared with
// every other reader: the caller must not modify them, nor anything they
// refer to. Secrets come without their payload. It is for readers of
// everything that only look, such as the leader's network views, which
// read every task of the cluster for each new store state.
type SharedFinder interface {
	FindShared(kind Kind, by By) ([]api.Object, error)
}

var _ SharedFinder = (*readTx)(nil)

// FindShared is Find without copies (SharedFinder), read only.
func (r *readTx) FindShared(kind Kind, by By) ([]api.Object, error) {
	return r.find(kind, by, func(rec *record) (api.Object, error) { return rec.shared() })
}

// object constrains the type parameters of Get and Find: P is *T and a
// stored type, e.g. Get[api.Service](tx, id) returns *api.Service.
type object[T any] interface {
	*T
	api.Object
}

// Get returns the object of type T with that ID, or ErrNotFound.
func Get[T any, P object[T]](tx ReadTx, id string) (P, error) {
	k, err := KindOf(P(new(T)))
	if err != nil {
		return nil, err
	}
	obj, err := tx.Get(k, id)
	if err != nil {
		return nil, err
	}
	return obj.(P), nil
}

// Find returns the objects of type T that match by.
func Find[T any, P object[T]](tx ReadTx, by By) ([]P, error) {
	k, err := KindOf(P(new(T)))
	if err != nil {
		return nil, err
	}
	objs, err := tx.Find(k, by)
	if err != nil {
		return nil, err
	}
	out := make([]P, len(objs))
	for i, o := range objs {
		out[i] = o.(P)
	}
	return out, nil
}

// FindShared returns the objects of type T that match by, shared and read
// only (SharedFinder) when tx can, else copies as Find.
func FindShared[T any, P object[T]](tx ReadTx, by By) ([]P, error) {
	sf, ok := tx.(SharedFinder)
	if !ok {
		return Find[T, P](tx, by)
	}
	k, err := KindOf(P(new(T)))
	if err != nil {
		return nil, err
	}
	objs, err := sf.FindShared(k, by)
	if err != nil {
		return nil, err
	}
	out := make([]P, len(objs))
	for i, o := range objs {
		out[i] = o.(P)
	}
	return out, nil
}

// writeTx records changes as ops for one txnCmd.
type writeTx struct {
	readTx
	now  time.Time
	ids  idSeq
	ops  []op
	objs []api.Object // per op: the caller's object to stamp after commit; nil for deletes
}

var _ Tx = (*writeTx)(nil)

func (w *writeTx) Create(obj api.Object) error {
	m := obj.GetMeta()
	if m.ID == "" {
		id, err := w.ids.next(w.now)
		if err != nil {
			return err
		}
		m.ID = id
	}
	return w.add(ActionCreate, obj, m.ID, 0)
}

func (w *writeTx) Update(obj api.Object) error {
	m := obj.GetMeta()
	if m.ID == "" {
		return fmt.Errorf("update: %w: object has no id", ErrInvalid)
	}
	return w.add(ActionUpdate, obj, m.ID, m.Version)
}

func (w *writeTx) Delete(kind Kind, id string, version uint64) error {
	if !kind.valid() || id == "" {
		return fmt.Errorf("delete: %w: kind and id are required", ErrInvalid)
	}
	w.ops = append(w.ops, op{Action: ActionDelete, Kind: kind, ID: id, Version: version})
	w.objs = append(w.objs, nil)
	return nil
}

func (w *writeTx) add(a Action, obj api.Object, id string, version uint64) error {
	k, err := KindOf(obj)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("%s %s %s: encode: %w", a, k, id, err)
	}
	o := op{Action: a, Kind: k, ID: id, Version: version, Keys: keysOf(obj), Raw: raw}
	if s, ok := obj.(*api.Secret); ok && s.Spec.Data != nil {
		if o.Sealed, err = seal((*[32]byte)(w.key), s.Spec.Data.Reveal()); err != nil {
			return fmt.Errorf("%s secret %s: %w", a, id, err)
		}
	}
	w.ops = append(w.ops, o)
	w.objs = append(w.objs, obj)
	return nil
}

// stamp sets the Meta the FSM gave the caller's objects.
func (w *writeTx) stamp(index uint64) {
	for i, obj := range w.objs {
		if obj == nil {
			continue
		}
		m := obj.GetMeta()
		m.Version = index
		m.UpdatedAt = w.now
		if w.ops[i].Action == ActionCreate {
			m.CreatedAt = w.now
		}
	}
}
