package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/raft"
)

// fsmHarness drives an FSM directly, as Raft would, with no network.
type fsmHarness struct {
	t          *testing.T
	f          *fsm
	lastResult *applyResult // of the last entry applied
	key        *DataKey
	index      uint64
	term       uint64
	now        time.Time
}

func newFSMHarness(t *testing.T) *fsmHarness {
	key, err := NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	return &fsmHarness{t: t, f: newFSM(slog.New(slog.DiscardHandler), newHub(16)), key: key, term: 1,
		now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// txn builds a transaction against the FSM's current state.
func (h *fsmHarness) txn(fn func(Tx) error) []byte {
	h.t.Helper()
	txn, idx := h.f.view()
	w := &writeTx{readTx: readTx{txn: txn, index: idx, key: h.key}, now: h.now}
	if err := fn(w); err != nil {
		h.t.Fatal(err)
	}
	cmd, err := encodeTxn(&txnCmd{Time: w.now, Ops: w.ops})
	if err != nil {
		h.t.Fatal(err)
	}
	return cmd
}

// apply applies entries as one Raft batch and returns their errors.
func (h *fsmHarness) apply(entries ...[]byte) []error {
	logs := make([]*raft.Log, len(entries))
	for i, e := range entries {
		h.index++
		logs[i] = &raft.Log{Index: h.index, Term: h.term, Type: raft.LogCommand, Data: e}
	}
	var errs []error
	for _, r := range h.f.ApplyBatch(logs) {
		var err error
		if res, ok := r.(*applyResult); ok {
			err = res.err
			h.lastResult = res
		}
		errs = append(errs, err)
	}
	return errs
}

func (h *fsmHarness) view() ReadTx {
	txn, idx := h.f.view()
	return &readTx{txn: txn, index: idx, key: h.key}
}

// noise returns n bytes that do not compress, for transactions that must
// stay large enough to be split into chunks.
func noise(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return b
}

func TestFSMVersionsAndConflicts(t *testing.T) {
	h := newFSMHarness(t)
	svc := &api.Service{Meta: api.Meta{ID: "s1"}, Spec: api.ServiceSpec{Name: "web", Stack: "shop"}}
	if errs := h.apply(h.txn(func(tx Tx) error { return tx.Create(svc) })); errs[0] != nil {
		t.Fatal(errs[0])
	}
	got, err := Get[api.Service](h.view(), "s1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 || !got.CreatedAt.Equal(h.now) || got.Spec.Name != "web" {
		t.Fatalf("stored %+v", got)
	}
	// Two updates built from the same read, applied in one batch: the
	// first wins, the second is rejected, and nothing of it is applied.
	a, b := *got, *got
	a.Spec.Replicas, b.Spec.Replicas = 2, 3
	other := &api.Network{Meta: api.Meta{ID: "n1"}, Spec: api.NetworkSpec{Name: "front"}}
	ca := h.txn(func(tx Tx) error { return tx.Update(&a) })
	cb := h.txn(func(tx Tx) error {
		if err := tx.Create(other); err != nil {
			return err
		}
		return tx.Update(&b)
	})
	errs := h.apply(ca, cb)
	if errs[0] != nil || !errors.Is(errs[1], ErrVersionConflict) {
		t.Fatalf("errs = %v, want nil and version conflict", errs)
	}
	got, _ = Get[api.Service](h.view(), "s1")
	if got.Spec.Replicas != 2 || got.Version != 2 || !got.CreatedAt.Equal(h.now) {
		t.Fatalf("after race: %+v", got)
	}
	if _, err := Get[api.Network](h.view(), "n1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rejected transaction left a change behind: %v", err)
	}

	tests := []struct {
		name string
		fn   func(Tx) error
		want error
	}{
		{"create existing id", func(tx Tx) error {
			return tx.Create(&api.Service{Meta: api.Meta{ID: "s1"}, Spec: api.ServiceSpec{Name: "x"}})
		}, ErrExists},
		{"create taken name", func(tx Tx) error { return tx.Create(&api.Service{Spec: api.ServiceSpec{Name: "web"}}) }, ErrNameConflict},
		{"update missing", func(tx Tx) error { return tx.Update(&api.Service{Meta: api.Meta{ID: "nope", Version: 1}}) }, ErrNotFound},
		{"delete stale", func(tx Tx) error { return tx.Delete(KindService, "s1", 1) }, ErrVersionConflict},
		{"delete missing", func(tx Tx) error { return tx.Delete(KindService, "nope", 0) }, ErrNotFound},
		{"two creates one name", func(tx Tx) error {
			if err := tx.Create(&api.Volume{Spec: api.VolumeSpec{Name: "v"}}); err != nil {
				return err
			}
			return tx.Create(&api.Volume{Spec: api.VolumeSpec{Name: "v"}})
		}, ErrNameConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if errs := h.apply(h.txn(tt.fn)); !errors.Is(errs[0], tt.want) {
				t.Fatalf("err = %v, want %v", errs[0], tt.want)
			}
		})
	}
	// Replace by name in one transaction: delete and create.
	errs = h.apply(h.txn(func(tx Tx) error {
		if err := tx.Delete(KindService, "s1", 0); err != nil {
			return err
		}
		return tx.Create(&api.Service{Meta: api.Meta{ID: "s2"}, Spec: api.ServiceSpec{Name: "web"}})
	}))
	if errs[0] != nil {
		t.Fatalf("replace by name: %v", errs[0])
	}
}

func TestFSMIndexes(t *testing.T) {
	h := newFSMHarness(t)
	h.apply(h.txn(func(tx Tx) error {
		for _, task := range []*api.Task{
			{Meta: api.Meta{ID: "t1"}, ServiceID: "a", NodeID: "n1", DesiredState: api.TaskRunning},
			{Meta: api.Meta{ID: "t2"}, ServiceID: "a", NodeID: "n2", DesiredState: api.TaskShutdown},
			{Meta: api.Meta{ID: "t3"}, ServiceID: "b", NodeID: "n1", DesiredState: api.TaskRunning},
		} {
			if err := tx.Create(task); err != nil {
				return err
			}
		}
		if err := tx.Create(&api.Service{Meta: api.Meta{ID: "a"}, Spec: api.ServiceSpec{Name: "shop_web", Stack: "shop"}}); err != nil {
			return err
		}
		return tx.Create(&api.Service{Meta: api.Meta{ID: "b"}, Spec: api.ServiceSpec{Name: "blog_web", Stack: "blog"}})
	}))
	ids := func(by By) []string {
		ts, err := Find[api.Task](h.view(), by)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range ts {
			out = append(out, x.ID)
		}
		return out
	}
	for _, tt := range []struct {
		by   By
		want []string
	}{
		{ByService("a"), []string{"t1", "t2"}},
		{ByNode("n1"), []string{"t1", "t3"}},
		{ByDesiredState(api.TaskRunning), []string{"t1", "t3"}},
		{All(), []string{"t1", "t2", "t3"}},
	} {
		if diff := cmp.Diff(tt.want, ids(tt.by)); diff != "" {
			t.Errorf("%v (-want +got):\n%s", tt.by, diff)
		}
	}
	svcs, _ := Find[api.Service](h.view(), ByStack("shop"))
	if len(svcs) != 1 || svcs[0].ID != "a" {
		t.Errorf("by stack: %v", svcs)
	}
	svcs, _ = Find[api.Service](h.view(), ByName("blog_web"))
	if len(svcs) != 1 || svcs[0].ID != "b" {
		t.Errorf("by name: %v", svcs)
	}
}

func TestFSMSnapshotRoundTrip(t *testing.T) {
	h := newFSMHarness(t)
	h.apply(h.txn(func(tx Tx) error {
		for _, o := range []api.Object{
			&api.Node{Spec: api.NodeSpec{Name: "n1", Labels: map[string]string{"zone": "a"}}},
			&api.Stack{Spec: api.StackSpec{Name: "shop"}},
			&api.Service{Spec: api.ServiceSpec{Name: "shop_web", Stack: "shop", Replicas: 3,
				Task: api.TaskSpec{Container: api.ContainerSpec{Image: "nginx", StopGracePeriod: api.Duration(time.Second)}}}},
			&api.Task{ServiceID: "x", Slot: 1, DesiredState: api.TaskRunning},
			&api.Network{Spec: api.NetworkSpec{Name: "front", Driver: "overlay"}},
			&api.Volume{Spec: api.VolumeSpec{Name: "data", Driver: "local"}},
			&api.Secret{Spec: api.SecretSpec{Name: "pw", Data: []byte("s3cret")}},
			&api.Config{Spec: api.ConfigSpec{Name: "conf", Data: []byte("x=1")}},
			&api.SyncState{Phase: api.SyncSynced, Revision: "abc"},
			&api.SyncRecord{Revision: "abc", Trigger: api.TriggerWebhook, Result: api.SyncSynced},
		} {
			if err := tx.Create(o); err != nil {
				return err
			}
		}
		return nil
	}))
	// A chunked transaction half received must survive the snapshot too.
	big := h.txn(func(tx Tx) error {
		return tx.Create(&api.Config{Spec: api.ConfigSpec{Name: "big", Data: noise(5000)}})
	})
	chunks := splitTxn(big, 2048)
	h.apply(chunks[0])

	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.(*fsmSnapshot).write(&buf); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte("s3cret")) {
		t.Fatal("snapshot holds secret plaintext")
	}
	h2 := newFSMHarness(t)
	h2.key, h2.index = h.key, h.index
	w := h2.f.hub.add(nil)
	if err := h2.f.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-w.Events(); ok || !errors.Is(w.Err(), ErrResync) {
		t.Errorf("watcher after restore: err = %v, want ErrResync", w.Err())
	}
	want, _ := records(h.view().(*readTx).txn)
	got, _ := records(h2.view().(*readTx).txn)
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(record{})); diff != "" {
		t.Fatalf("restored state (-want +got):\n%s", diff)
	}
	if h2.f.index != h.f.index {
		t.Errorf("restored index %d, want %d", h2.f.index, h.f.index)
	}
	sec, err := Find[api.Secret](h2.view(), ByName("pw"))
	if err != nil || len(sec) != 1 || string(sec[0].Spec.Data.Reveal()) != "s3cret" {
		t.Fatalf("restored secret: %v %v", sec, err)
	}
	// The remaining chunks complete the staged transaction after restore.
	for _, c := range chunks[1:] {
		if errs := h2.apply(c); errs[0] != nil {
			t.Fatal(errs[0])
		}
	}
	if cs, _ := Find[api.Config](h2.view(), ByName("big")); len(cs) != 1 || len(cs[0].Spec.Data) != 5000 {
		t.Fatalf("chunked transaction after restore: %v", cs)
	}
}

func TestFSMChunks(t *testing.T) {
	h := newFSMHarness(t)
	cmd := h.txn(func(tx Tx) error {
		for i := range 50 {
			if err := tx.Create(&api.Config{Spec: api.ConfigSpec{Name: string(rune('a'+i%26)) + string(rune('a'+i/26)),
				Data: noise(100)}}); err != nil {
				return err
			}
		}
		return nil
	})
	chunks := splitTxn(cmd, 1024)
	if len(chunks) < 5 {
		t.Fatalf("%d chunks", len(chunks))
	}
	for _, c := range chunks {
		if len(c) > 1024 {
			t.Fatalf("chunk of %d bytes", len(c))
		}
	}
	count := func() int { cs, _ := Find[api.Config](h.view(), All()); return len(cs) }
	// Nothing is visible until the last chunk commits.
	h.apply(chunks[:len(chunks)-1]...)
	if n := count(); n != 0 {
		t.Fatalf("%d configs visible before the last chunk", n)
	}
	if errs := h.apply(chunks[len(chunks)-1]); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if n := count(); n != 50 {
		t.Fatalf("%d configs after the last chunk, want 50", n)
	}
	// A transaction abandoned by its leader is dropped at the next term.
	cmd2 := h.txn(func(tx Tx) error {
		return tx.Create(&api.Config{Spec: api.ConfigSpec{Name: "zz", Data: noise(3000)}})
	})
	chunks2 := splitTxn(cmd2, 1024)
	h.apply(chunks2[0])
	h.term++
	h.apply(h.txn(func(tx Tx) error { return tx.Create(&api.Config{Spec: api.ConfigSpec{Name: "other"}}) }))
	if len(h.f.staged) != 0 {
		t.Fatalf("stale staged transaction kept")
	}
	if errs := h.apply(chunks2[1:]...); errs[len(errs)-1] == nil {
		t.Fatal("rest of an abandoned transaction applied")
	}
}

func TestSecretSealed(t *testing.T) {
	h := newFSMHarness(t)
	cmd := h.txn(func(tx Tx) error {
		return tx.Create(&api.Secret{Spec: api.SecretSpec{Name: "pw", Data: []byte("correct horse")}})
	})
	if bytes.Contains(cmd, []byte("correct horse")) {
		t.Fatal("command holds secret plaintext")
	}
	t1, err := decodeTxn(cmd)
	if err != nil || t1.Ops[0].Sealed == nil {
		t.Fatalf("no sealed payload: %v", err)
	}
	other, _ := NewDataKey()
	if _, err := open((*[32]byte)(other), t1.Ops[0].Sealed); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("opened with the wrong key: %v", err)
	}
}

func FuzzApplyCommand(f *testing.F) {
	h := newFSMHarness(&testing.T{})
	f.Add([]byte{cmdTxn, txnFormat, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 3})
	f.Add(h.txn(func(tx Tx) error { return tx.Create(&api.Service{Spec: api.ServiceSpec{Name: "web"}}) }))
	f.Add(h.txn(func(tx Tx) error { return tx.Delete(KindTask, "t", 3) }))
	f.Add(splitTxn(h.txn(func(tx Tx) error { return tx.Create(&api.Config{Spec: api.ConfigSpec{Data: noise(1500)}}) }), 1024)[0])
	f.Add(encodeAbort(txnID{1}))
	f.Add(h.txn(func(tx Tx) error { // compressed
		for i := range 20 {
			if err := tx.Create(&api.Task{ServiceID: "svc", Slot: uint64(i), DesiredState: api.TaskRunning}); err != nil {
				return err
			}
		}
		return nil
	}))
	f.Add(encodeGroup([][]byte{h.txn(func(tx Tx) error { return tx.Delete(KindTask, "t", 3) }), {cmdTxn}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		fh := newFSMHarness(t)
		fh.apply(data) // must not panic; an error is fine
		if _, err := records(fh.view().(*readTx).txn); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRetryConflicts(t *testing.T) {
	calls := 0
	err := RetryConflicts(3, func() error { calls++; return fmt.Errorf("update: %w", ErrVersionConflict) })
	if !errors.Is(err, ErrVersionConflict) || calls != 3 {
		t.Errorf("conflicts: %d calls, err %v", calls, err)
	}
	calls = 0
	if err := RetryConflicts(3, func() error {
		calls++
		if calls < 2 {
			return ErrVersionConflict
		}
		return nil
	}); err != nil || calls != 2 {
		t.Errorf("second try wins: %d calls, err %v", calls, err)
	}
	calls = 0
	if err := RetryConflicts(3, func() error { calls++; return ErrNotFound }); !errors.Is(err, ErrNotFound) || calls != 1 {
		t.Errorf("other error retried: %d calls", calls)
	}
}

// TestFSMGroup: the members of a group entry are applied in order, each on
// its own: the stale one, the one that conflicts with an earlier member
// and the malformed one fail alone and leave nothing behind; the others
// apply at the group's index, and the state is what the same transactions
// give as entries of their own.
func TestFSMGroup(t *testing.T) {
	build := func(h *fsmHarness) [][]byte {
		base := &api.Service{Meta: api.Meta{ID: "s1"}, Spec: api.ServiceSpec{Name: "web"}}
		if errs := h.apply(h.txn(func(tx Tx) error { return tx.Create(base) })); errs[0] != nil {
			t.Fatal(errs[0])
		}
		fresh, stale := *base, *base
		fresh.Spec.Replicas, stale.Spec.Replicas = 2, 3
		fresh.Version, stale.Version = h.index, h.index-1 // stale: read before the create
		return [][]byte{
			h.txn(func(tx Tx) error { return tx.Update(&fresh) }),
			h.txn(func(tx Tx) error {
				if err := tx.Create(&api.Network{Meta: api.Meta{ID: "n-stale"}, Spec: api.NetworkSpec{Name: "stale"}}); err != nil {
					return err
				}
				return tx.Update(&stale)
			}),
			h.txn(func(tx Tx) error {
				return tx.Create(&api.Network{Meta: api.Meta{ID: "n1"}, Spec: api.NetworkSpec{Name: "front"}})
			}),
			h.txn(func(tx Tx) error { // the name the member before it took
				return tx.Create(&api.Network{Meta: api.Meta{ID: "n2"}, Spec: api.NetworkSpec{Name: "front"}})
			}),
			{cmdTxn, txnFormat, 1}, // malformed
			h.txn(func(tx Tx) error { return tx.Delete(KindService, "s1", 0) }),
		}
	}
	want := []error{nil, ErrVersionConflict, nil, ErrNameConflict, ErrInvalid, nil}

	g := newFSMHarness(t)
	members := build(g)
	errs := g.apply(encodeGroup(members))
	if len(errs) != 1 || errs[0] != nil {
		t.Fatalf("group entry: %v", errs)
	}
	res := g.lastResult
	if len(res.errs) != len(want) {
		t.Fatalf("%d member results, want %d", len(res.errs), len(want))
	}
	for i, w := range want {
		if (w == nil) != (res.errs[i] == nil) || (w != nil && !errors.Is(res.errs[i], w)) {
			t.Errorf("member %d: err = %v, want %v", i, res.errs[i], w)
		}
	}
	n1, err := Get[api.Network](g.view(), "n1")
	if err != nil || n1.Version != g.index {
		t.Fatalf("n1 = %+v, %v; want version %d (the group's index)", n1, err, g.index)
	}
	for _, id := range []string{"n-stale", "n2"} {
		if _, err := Get[api.Network](g.view(), id); !errors.Is(err, ErrNotFound) {
			t.Errorf("rejected member left %s behind: %v", id, err)
		}
	}
	if _, err := Get[api.Service](g.view(), "s1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("s1 not deleted by the last member: %v", err)
	}

	// The same transactions, one entry each, in one Raft batch.
	s := newFSMHarness(t)
	s.key = g.key
	members = build(s)
	errs = s.apply(members...)
	for i, w := range want {
		if (w == nil) != (errs[i] == nil) || (w != nil && !errors.Is(errs[i], w)) {
			t.Errorf("entry %d: err = %v, want %v", i, errs[i], w)
		}
	}
	strip := func(rs []*record) []*record {
		for _, r := range rs {
			r.Version = 0 // versions are indexes: one group index against one index per entry
		}
		return rs
	}
	gotG, _ := records(g.view().(*readTx).txn)
	gotS, _ := records(s.view().(*readTx).txn)
	if diff := cmp.Diff(strip(gotS), strip(gotG), cmpopts.IgnoreUnexported(record{})); diff != "" {
		t.Errorf("group state differs from separate entries (-separate +group):\n%s", diff)
	}
}

func TestDecodeGroup(t *testing.T) {
	a, b := []byte{cmdTxn, 1, 2}, []byte{cmdTxn, 3}
	got, err := decodeGroup(encodeGroup([][]byte{a, b}))
	if err != nil || len(got) != 2 || !bytes.Equal(got[0], a) || !bytes.Equal(got[1], b) {
		t.Fatalf("round trip: %q, %v", got, err)
	}
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"empty", []byte{cmdGroup}},
		{"no members", []byte{cmdGroup, 0}},
		{"more members than bytes", []byte{cmdGroup, 5, 0}},
		{"truncated member", []byte{cmdGroup, 1, 4, cmdTxn}},
		{"trailing bytes", append(encodeGroup([][]byte{a}), 7)},
		{"not a group", a},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeGroup(tt.data); !errors.Is(err, ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

// TestFSMBatchMatchesSerial: entries applied together in Raft batches
// (one database transaction each, read through batchTxn) give each the
// same result, and the state the same records, as applied one batch each.
// The transactions are random creates, renames and deletes of a few
// services over a few names, with current or stale versions.
func TestFSMBatchMatchesSerial(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			serial := newFSMHarness(t)
			var entries [][]byte
			var want []error
			for range 40 {
				cmd := serial.txn(func(tx Tx) error {
					used := map[string]bool{}
					for range 1 + rng.IntN(3) {
						id := fmt.Sprintf("s%d", rng.IntN(5))
						if used[id] {
							continue
						}
						used[id] = true
						cur, err := Get[api.Service](tx, id)
						svc := &api.Service{Meta: api.Meta{ID: id}, Spec: api.ServiceSpec{Name: fmt.Sprintf("n%d", rng.IntN(3))}}
						if err == nil {
							svc.Version = cur.Version
						}
						if rng.IntN(4) == 0 {
							svc.Version = uint64(rng.IntN(int(serial.index) + 1)) // likely stale
						}
						switch rng.IntN(3) {
						case 0:
							err = tx.Create(svc)
						case 1:
							err = tx.Update(svc)
						default:
							err = tx.Delete(KindService, id, svc.Version)
						}
						if err != nil {
							return err
						}
					}
					return nil
				})
				entries = append(entries, cmd)
				want = append(want, serial.apply(cmd)[0])
			}
			batch := newFSMHarness(t)
			batch.key = serial.key
			var got []error
			for rest := entries; len(rest) > 0; { // batches of 1 to 12 entries
				n := min(1+rng.IntN(12), len(rest))
				got = append(got, batch.apply(rest[:n]...)...)
				rest = rest[n:]
			}
			failed := 0
			for i := range want {
				if fmt.Sprint(want[i]) != fmt.Sprint(got[i]) {
					t.Errorf("entry %d: %v in one batch, %v alone", i, got[i], want[i])
				}
				if want[i] != nil {
					failed++
				}
			}
			if failed == 0 || failed == len(want) {
				t.Errorf("%d of %d entries failed: the test exercises nothing", failed, len(want))
			}
			a, _ := records(serial.view().(*readTx).txn)
			b, _ := records(batch.view().(*readTx).txn)
			if diff := cmp.Diff(a, b, cmpopts.IgnoreUnexported(record{})); diff != "" {
				t.Errorf("state (-serial +batch):\n%s", diff)
			}
		})
	}
}
