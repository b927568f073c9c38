package store

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
)

// record is one stored object as the FSM keeps it: the object's JSON as
// proposed (Raw, whose Meta is stale), the Meta the FSM assigned, the index
// keys, and a secret's sealed payload. Records are immutable once inserted
// (an update inserts a new record), so the object decoded from one is
// decoded once and cached on it (object).
type record struct {
	Kind      Kind      `json:"kind"`
	ID        string    `json:"id"`
	Version   uint64    `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Keys
	Raw    json.RawMessage `json:"raw"`
	Sealed []byte          `json:"sealed,omitempty"`

	// key is idKey(ID), computed once when the record is made so that the
	// indexes do not build it again; nil (computed when needed) in records
	// read from a snapshot. Never modified: the id index keeps it.
	key []byte

	// decoded is the object decoded from Raw with the record's Meta,
	// made by the first read and shared by every read after it (object).
	// It never holds a secret's payload and is never modified: readers
	// get deep copies of it.
	decoded struct {
		once sync.Once
		obj  api.Object
		err  error
	}
}

func (r *record) meta() api.Meta {
	return api.Meta{ID: r.ID, Version: r.Version, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// object returns a copy of the object that the caller owns, without a
// secret's payload. The first call decodes Raw; every call returns a deep
// copy of that decoded object, which costs a fraction of decoding again.
// It is safe for concurrent use.
func (r *record) object() (api.Object, error) {
	obj, err := r.shared()
	if err != nil {
		return nil, err
	}
	return deepCopy(obj), nil
}

// shared returns the decoded object itself, which callers must not
// modify. It is safe for concurrent use.
func (r *record) shared() (api.Object, error) {
	d := &r.decoded
	d.once.Do(func() { d.obj, d.err = r.decode() })
	return d.obj, d.err
}

// decode decodes the object from Raw, without a secret's payload.
func (r *record) decode() (api.Object, error) {
	obj := r.Kind.newObject()
	if obj == nil {
		return nil, fmt.Errorf("decode %s %s: unknown kind", r.Kind, r.ID)
	}
	if err := json.Unmarshal(r.Raw, obj); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", r.Kind, r.ID, err)
	}
	*obj.GetMeta() = r.meta()
	return obj, nil
}

// Index names of every table.
const (
	idxID      = "id"
	idxName    = "name"
	idxStack   = "stack"
	idxService = "service"
	idxNode    = "node"
	idxDesired = "desired"
)

// fieldIndex indexes records by one string field, read directly rather
// than by reflection (memdb.StringFieldIndex) because apply cost is paid
// on every manager for every object. An empty value is not indexed.
type fieldIndex func(*record) string

func (f fieldIndex) FromObject(obj any) (bool, []byte, error) {
	r, ok := obj.(*record)
	if !ok {
		return false, nil, fmt.Errorf("index: %T is not a record", obj)
	}
	v := f(r)
	if v == "" {
		return false, nil, nil
	}
	// memdb appends the id index key to a non-unique index's key: leave
	// room for it so that the append does not allocate again.
	b := make([]byte, len(v)+1, len(v)+1+len(r.ID)+2) // idKey is at most len(ID)+2 bytes
	copy(b, v)
	return true, b, nil
}

func nulTerminated(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}

func (f fieldIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("index: want one argument, got %d", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("index: argument %T is not a string", args[0])
	}
	return nulTerminated(s), nil
}

// idIndex indexes records by idKey(ID): unique, and in creation order for
// store-made IDs.
type idIndex struct{}

func (idIndex) FromObject(obj any) (bool, []byte, error) {
	r, ok := obj.(*record)
	if !ok {
		return false, nil, fmt.Errorf("index: %T is not a record", obj)
	}
	if r.ID == "" {
		return false, nil, nil
	}
	if r.key != nil {
		return true, r.key, nil
	}
	return true, idKey(r.ID), nil
}

// idKeyArg is an id index key already built, for lookups by the FSM.
type idKeyArg []byte

func (idIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("index: want one argument, got %d", len(args))
	}
	switch a := args[0].(type) {
	case string:
		return idKey(a), nil
	case idKeyArg:
		return a, nil
	}
	return nil, fmt.Errorf("index: argument %T is not a string", args[0])
}

var indexFields = map[string]fieldIndex{
	idxName:    func(r *record) string { return r.Name },
	idxStack:   func(r *record) string { return r.Stack },
	idxService: func(r *record) string { return r.Service },
	idxNode:    func(r *record) string { return r.Node },
	idxDesired: func(r *record) string { return r.Desired },
}

// secondaryIndexes lists the indexes each kind has besides id.
func (k Kind) secondaryIndexes() []string {
	switch k {
	case KindNode, KindAdminCert:
		return []string{idxName}
	case KindTask:
		return []string{idxService, idxNode, idxDesired}
	case KindStack, KindService, KindNetwork, KindVolume, KindSecret, KindConfig:
		return []string{idxName, idxStack}
	}
	return nil
}

func dbSchema() *memdb.DBSchema {
	s := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{}}
	for _, k := range Kinds() {
		t := &memdb.TableSchema{Name: k.String(), Indexes: map[string]*memdb.IndexSchema{
			idxID: {Name: idxID, Unique: true, Indexer: idIndex{}},
		}}
		for _, name := range k.secondaryIndexes() {
			t.Indexes[name] = &memdb.IndexSchema{Name: name, AllowMissing: true, Indexer: indexFields[name]}
		}
		s.Tables[k.String()] = t
	}
	return s
}

// newMemDB returns an empty database without mutation tracking. memdb
// tracks, on its primary database, the watch channel of every radix node
// a write transaction replaces and closes them all on commit, for readers
// blocked in a memdb WatchSet. The store never uses memdb watches (it has
// its own, fed by Apply), so it writes to a Snapshot of the new database:
// the same schema and trees, but not primary, so that bookkeeping (a map
// of up to 8192 channels per index per transaction, then a whole-tree
// comparison once it overflows) is skipped on every manager.
func newMemDB() *memdb.MemDB {
	db, err := memdb.NewMemDB(dbSchema())
	if err != nil {
		panic(fmt.Sprintf("store: invalid schema: %v", err)) // programmer error
	}
	return db.Snapshot()
}

// stagedTxn collects the chunks of a transaction too large for one entry.
type stagedTxn struct {
	Term uint64 `json:"term"`
	Next uint64 `json:"next"`
	Data []byte `json:"data"`
}

// applyResult is what FSM.Apply returns to the proposer through Raft:
// the entry's error or, for a cmdGroup, one error per member (nil when
// the member applied) unless the group itself is malformed (err).
type applyResult struct {
	err  error
	errs []error
}

// fsm is the Raft state machine. Raft calls ApplyBatch, Snapshot and
// Restore from one goroutine; readers take mu to pair a read snapshot of
// the database with the index it reflects.
type fsm struct {
	log *slog.Logger
	hub *hub

	mu     sync.RWMutex
	db     *memdb.MemDB
	index  uint64        // last applied entry that reached the FSM
	notify chan struct{} // closed and replaced whenever index moves

	staged map[txnID]*stagedTxn // Raft's FSM goroutine only

	// watches are the commands local proposers wait on (settle.go).
	watches cmdWatches
}

var (
	_ raft.FSM         = (*fsm)(nil)
	_ raft.BatchingFSM = (*fsm)(nil)
)

func newFSM(log *slog.Logger, h *hub) *fsm {
	return &fsm{log: log, hub: h, db: newMemDB(), notify: make(chan struct{}),
		staged: map[txnID]*stagedTxn{}}
}

// Apply applies one entry.
func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies committed entries in one database transaction. Each
// entry is checked in full before any of its changes is made, so a rejected
// entry changes nothing while the entries around it apply.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	resp := make([]any, len(logs))
	txn := newBatchTxn(f.db)
	watched := f.watches.n.Load() > 0
	var done []appliedCmd
	var events []Event
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		f.dropStale(l.Term)
		if len(l.Data) > 0 && l.Data[0] == cmdGroup {
			res := applyGroup(txn, l, &events)
			resp[i] = res
			if watched && res.err == nil {
				members, _ := decodeGroup(l.Data)
				for j, m := range members {
					done = append(done, appliedCmd{data: m, index: l.Index, err: res.errs[j]})
				}
			}
			continue
		}
		err := f.applyEntry(txn, l, &events)
		resp[i] = &applyResult{err: err}
		if watched && len(l.Data) > 0 && l.Data[0] == cmdTxn {
			done = append(done, appliedCmd{data: l.Data, index: l.Index, err: err})
		}
	}
	f.mu.Lock()
	txn.commit()
	f.watches.fire(done) // before the index moves: a barrier's waiter then sees them
	f.index = logs[len(logs)-1].Index
	close(f.notify)
	f.notify = make(chan struct{})
	f.hub.publish(events)
	f.mu.Unlock()
	return resp
}

// dropStale discards staged chunked transactions of earlier terms: their
// leader is gone and its proposer has already failed.
func (f *fsm) dropStale(term uint64) {
	for id, st := range f.staged {
		if st.Term < term {
			delete(f.staged, id)
		}
	}
}

func (f *fsm) applyEntry(txn *batchTxn, l *raft.Log, events *[]Event) error {
	if len(l.Data) == 0 {
		return fmt.Errorf("%w: empty entry", ErrInvalid)
	}
	switch l.Data[0] {
	case cmdTxn:
		t, err := decodeTxn(l.Data)
		if err != nil {
			return err
		}
		return applyTxn(txn, l.Index, t, events)
	case cmdChunk:
		c, err := decodeChunk(l.Data)
		if err != nil {
			return err
		}
		st := f.staged[c.id]
		if c.seq == 0 {
			st = &stagedTxn{Term: l.Term}
			f.staged[c.id] = st
		} else if st == nil || st.Next != c.seq {
			delete(f.staged, c.id)
			return fmt.Errorf("%w: chunk %d out of order", ErrInvalid, c.seq)
		}
		st.Data = append(st.Data, c.data...)
		st.Next++
		if !c.last {
			return nil
		}
		delete(f.staged, c.id)
		t, err := decodeTxn(st.Data)
		if err != nil {
			return err
		}
		return applyTxn(txn, l.Index, t, events)
	case cmdAbort:
		id, err := decodeAbort(l.Data)
		if err != nil {
			return err
		}
		delete(f.staged, id)
		return nil
	}
	return fmt.Errorf("%w: unknown command type %d", ErrInvalid, l.Data[0])
}

// applyGroup applies the members of a cmdGroup in order, each on its own
// as if it were an entry of its own at the group's index: a member that is
// rejected (stale version, name taken, malformed) changes nothing and
// does not stop the members after it, which see the changes of the
// members before it.
func applyGroup(txn *batchTxn, l *raft.Log, events *[]Event) *applyResult {
	members, err := decodeGroup(l.Data)
	if err != nil {
		return &applyResult{err: err}
	}
	res := &applyResult{errs: make([]error, len(members))}
	for i, m := range members {
		t, err := decodeTxn(m)
		if err == nil {
			err = applyTxn(txn, l.Index, t, events)
		}
		res.errs[i] = err
	}
	return res
}

func getRecord(txn *memdb.Txn, k Kind, id string) (*record, error) {
	return getByKey(txn, k, id, idKeyArg(idKey(id)))
}

// getByKey is getRecord with the id's key already built.
func getByKey(txn *memdb.Txn, k Kind, id string, key idKeyArg) (*record, error) {
	raw, err := txn.First(k.String(), idxID, key)
	if err != nil {
		return nil, fmt.Errorf("get %s %s: %w", k, id, err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*record), nil
}

// batchTxn is the database transaction of one ApplyBatch. Checks never
// read through the memdb write transaction: such a read clones the index's
// radix transaction, which drops its cache of the nodes it has already
// copied, so every insert after a read would copy its whole path from the
// root again (which, with a read per change, was most of what applying a
// create cost). They read the state before the batch (before, read-only)
// and the records the batch has written since (written, nil when deleted)
// instead.
type batchTxn struct {
	txn     *memdb.Txn
	before  *memdb.Txn
	written map[recordKey]*record
	named   map[nameKey][]*record // written records of unique-name kinds, by name
}

type recordKey struct {
	k  Kind
	id string
}

type nameKey struct {
	k    Kind
	name string
}

func newBatchTxn(db *memdb.MemDB) *batchTxn {
	return &batchTxn{txn: db.Txn(true), before: db.Txn(false), written: map[recordKey]*record{}, named: map[nameKey][]*record{}}
}

func (b *batchTxn) commit() { b.txn.Commit() }

// get returns the current record of an object, or nil.
func (b *batchTxn) get(k Kind, id string, key idKeyArg) (*record, error) {
	if r, ok := b.written[recordKey{k, id}]; ok {
		return r, nil
	}
	return getByKey(b.before, k, id, key)
}

// eachNamed calls fn with every current record of kind k named name.
func (b *batchTxn) eachNamed(k Kind, name string, fn func(*record) error) error {
	it, err := b.before.Get(k.String(), idxName, name)
	if err != nil {
		return fmt.Errorf("lookup %s name: %w", k, err)
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		r := raw.(*record)
		if _, ok := b.written[recordKey{k, r.ID}]; ok {
			continue // changed since: its current record, if named so, is in named
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	for _, r := range b.named[nameKey{k, name}] {
		if b.written[recordKey{k, r.ID}] != r {
			continue // changed again or deleted since
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (b *batchTxn) insert(rec *record) error {
	if err := b.txn.Insert(rec.Kind.String(), rec); err != nil {
		return err
	}
	b.written[recordKey{rec.Kind, rec.ID}] = rec
	if rec.Kind.uniqueName() && rec.Name != "" {
		nk := nameKey{rec.Kind, rec.Name}
		b.named[nk] = append(b.named[nk], rec)
	}
	return nil
}

func (b *batchTxn) delete(cur *record) error {
	if err := b.txn.Delete(cur.Kind.String(), cur); err != nil {
		return err
	}
	b.written[recordKey{cur.Kind, cur.ID}] = nil
	return nil
}

// applyTxn checks every change of t against the state, then applies them
// all at version index. It is deterministic: same state and t, same result.
func applyTxn(txn *batchTxn, index uint64, t *txnCmd, events *[]Event) error {
	deleted := map[string]bool{}
	for _, o := range t.Ops {
		if o.Action == ActionDelete {
			deleted[o.Kind.String()+"/"+o.ID] = true
		}
	}
	current := make([]*record, len(t.Ops))
	keys := make([][]byte, len(t.Ops))
	claimed := map[nameKey]string{}
	for i := range t.Ops {
		o := &t.Ops[i]
		keys[i] = idKey(o.ID)
		cur, err := txn.get(o.Kind, o.ID, keys[i])
		if err != nil {
			return err
		}
		current[i] = cur
		switch o.Action {
		case ActionCreate:
			if cur != nil {
				return fmt.Errorf("create %s %s: %w", o.Kind, o.ID, ErrExists)
			}
		case ActionUpdate, ActionDelete:
			if cur == nil {
				return fmt.Errorf("%s %s %s: %w", o.Action, o.Kind, o.ID, ErrNotFound)
			}
			if (o.Action == ActionUpdate || o.Version != 0) && cur.Version != o.Version {
				return fmt.Errorf("%s %s %s at version %d: %w: current version is %d",
					o.Action, o.Kind, o.ID, o.Version, ErrVersionConflict, cur.Version)
			}
		}
		if o.Action == ActionDelete || !o.Kind.uniqueName() || o.Keys.Name == "" {
			continue
		}
		nk := nameKey{o.Kind, o.Keys.Name}
		if other, ok := claimed[nk]; ok && other != o.ID {
			return fmt.Errorf("%s %s %q: %w", o.Action, o.Kind, o.Keys.Name, ErrNameConflict)
		}
		claimed[nk] = o.ID
		err = txn.eachNamed(o.Kind, o.Keys.Name, func(r *record) error {
			if r.ID != o.ID && !deleted[o.Kind.String()+"/"+r.ID] {
				return fmt.Errorf("%s %s %q: %w", o.Action, o.Kind, o.Keys.Name, ErrNameConflict)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for i := range t.Ops {
		o, cur := &t.Ops[i], current[i]
		if o.Action == ActionDelete {
			if err := txn.delete(cur); err != nil {
				return fmt.Errorf("delete %s %s: %w", o.Kind, o.ID, err) // cannot happen: checked above
			}
			*events = append(*events, Event{Index: index, Action: o.Action, Kind: o.Kind, ID: o.ID, rec: cur})
			continue
		}
		rec := &record{Kind: o.Kind, ID: o.ID, Version: index, CreatedAt: t.Time, UpdatedAt: t.Time,
			Keys: o.Keys, Raw: o.Raw, Sealed: o.Sealed, key: keys[i]}
		if cur != nil {
			rec.CreatedAt = cur.CreatedAt
			if rec.Sealed == nil {
				rec.Sealed = cur.Sealed
			}
		}
		if err := txn.insert(rec); err != nil {
			return fmt.Errorf("%s %s %s: %w", o.Action, o.Kind, o.ID, err)
		}
		*events = append(*events, Event{Index: index, Action: o.Action, Kind: o.Kind, ID: o.ID, rec: rec})
	}
	return nil
}

// view returns a read snapshot and the index it reflects.
func (f *fsm) view() (*memdb.Txn, uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.db.Txn(false), f.index
}

// applied returns the current index and a channel closed when it moves.
func (f *fsm) applied() (uint64, <-chan struct{}) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.index, f.notify
}

// records lists every record sorted by kind and ID (tests and snapshots).
func records(txn *memdb.Txn) ([]*record, error) {
	var out []*record
	for _, k := range Kinds() {
		it, err := txn.Get(k.String(), idxID)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", k, err)
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			out = append(out, raw.(*record))
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}
