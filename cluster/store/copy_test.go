package store

import (
	"encoding"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/google/go-cmp/cmp"
)

var (
	timeType            = reflect.TypeFor[time.Time]()
	constraintType      = reflect.TypeFor[api.Constraint]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// fill sets every reachable exported field of v to a non-zero value that
// survives the store's JSON encoding: two elements in every slice and map,
// every pointer set, enums (uint8 kinds that unmarshal from text) set to
// their second value.
func fill(t *testing.T, v reflect.Value, path string, n *int) {
	t.Helper()
	*n++
	switch v.Type() {
	case timeType:
		v.Set(reflect.ValueOf(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(*n) * time.Second)))
		return
	case constraintType: // text that must parse
		v.Set(reflect.ValueOf(api.Constraint{Key: fmt.Sprintf("node.labels.k%d", *n), Op: api.OpNe, Value: fmt.Sprint("v", *n)}))
		return
	}
	small := int64(1 + *n%100) // fits every integer type, never zero
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(small)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if reflect.PointerTo(v.Type()).Implements(textUnmarshalerType) {
			v.SetUint(1) // an enum: every one has at least two values
		} else {
			v.SetUint(uint64(small))
		}
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(small) / 128)
	case reflect.String:
		v.SetString(fmt.Sprintf("%s#%d", path, *n))
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(t, p.Elem(), path, n)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(t, s.Index(i), fmt.Sprintf("%s[%d]", path, i), n)
		}
		v.Set(s)
	case reflect.Array:
		for i := range v.Len() {
			fill(t, v.Index(i), fmt.Sprintf("%s[%d]", path, i), n)
		}
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for i := range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(t, k, fmt.Sprintf("%s.key%d", path, i), n)
			fill(t, e, fmt.Sprintf("%s[%v]", path, k), n)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				t.Fatalf("%s.%s: unexported field: the test cannot fill it", path, f.Name)
			}
			fill(t, v.Field(i), path+"."+f.Name, n)
		}
	default:
		t.Fatalf("%s: cannot fill a %s", path, v.Type())
	}
}

// mutate changes every reachable leaf of v in place: through pointers,
// into slices' arrays and maps, so that whatever a shallow copy shares
// with the store is changed too. It fails the test on a zero leaf, a nil
// reference or an empty slice or map: the object was not filled.
func mutate(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	if v.IsZero() {
		t.Errorf("%s: zero before mutation: the test does not cover it", path)
		return
	}
	if v.Type() == timeType {
		v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(time.Hour)))
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(v.Uint() + 1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(v.Float() + 1)
	case reflect.String:
		v.SetString(v.String() + "!")
	case reflect.Pointer:
		mutate(t, v.Elem(), path)
	case reflect.Slice, reflect.Array:
		if v.Len() == 0 {
			t.Errorf("%s: empty before mutation", path)
		}
		for i := range v.Len() {
			mutate(t, v.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		if v.Len() == 0 {
			t.Errorf("%s: empty before mutation", path)
		}
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			mutate(t, e, fmt.Sprintf("%s[%v]", path, k))
			v.SetMapIndex(k, e)
		}
		k := reflect.New(v.Type().Key()).Elem()
		if k.Kind() == reflect.String {
			k.SetString("added by mutate")
			v.SetMapIndex(k, reflect.New(v.Type().Elem()).Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				mutate(t, v.Field(i), path+"."+v.Type().Field(i).Name)
			}
		}
	default:
		t.Errorf("%s: cannot mutate a %s", path, v.Type())
	}
}

// TestReadsAreDeepCopies is the contract of every read since records cache
// their decoded object: for every kind, an object with every field set is
// created and read; changing every field of what a read returned (by Get,
// Find or a watch event) changes nothing that a later read returns.
func TestReadsAreDeepCopies(t *testing.T) {
	for _, k := range Kinds() {
		t.Run(k.String(), func(t *testing.T) {
			h := newFSMHarness(t)
			w := h.f.hub.add(nil)
			defer w.Close()
			orig := k.newObject()
			n := 0
			fill(t, reflect.ValueOf(orig).Elem(), k.String(), &n)
			id := orig.GetMeta().ID
			if errs := h.apply(h.txn(func(tx Tx) error { return tx.Create(orig) })); errs[0] != nil {
				t.Fatal(errs[0])
			}
			*orig.GetMeta() = api.Meta{ID: id, Version: h.index, CreatedAt: h.now, UpdatedAt: h.now}
			ev := <-w.Events()

			read := func(what string) api.Object {
				t.Helper()
				got, err := h.view().Get(k, id)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(orig, got); diff != "" {
					t.Fatalf("%s (-created +read):\n%s", what, diff)
				}
				return got
			}
			got := read("first read")
			mutate(t, reflect.ValueOf(got).Elem(), k.String())
			if cmp.Equal(orig, got) {
				t.Fatal("mutate changed nothing")
			}
			read("read after changing what Get returned")

			all, err := h.view().Find(k, All())
			if err != nil || len(all) != 1 {
				t.Fatalf("find: %v, %v", all, err)
			}
			mutate(t, reflect.ValueOf(all[0]).Elem(), k.String())
			read("read after changing what Find returned")

			view, err := ev.View()
			if err != nil {
				t.Fatal(err)
			}
			if again, _ := ev.View(); again != view {
				t.Fatal("two views of an event are different objects; want the one shared")
			}
			if s, ok := view.(*api.Secret); ok && s.Spec.Data != nil {
				t.Fatal("a watch event's shared secret holds the payload")
			}
			obj, err := ev.Object()
			if err != nil {
				t.Fatal(err)
			}
			if obj == view {
				t.Fatal("Object returned the shared view; want a copy")
			}
			if s, ok := obj.(*api.Secret); ok {
				if s.Spec.Data != nil {
					t.Fatal("a watch event's secret holds the payload")
				}
				s.Spec.Data = api.SecretBytes("x") // for mutate, which wants every field set
			}
			mutate(t, reflect.ValueOf(obj).Elem(), k.String())
			read("read after changing a watch event's object")
			again, err := ev.Object()
			if err != nil {
				t.Fatal(err)
			}
			if s, ok := orig.(*api.Secret); ok {
				s.Spec.Data = nil // events carry no payload
			}
			if diff := cmp.Diff(orig, again); diff != "" {
				t.Fatalf("event object after changing another (-created +event):\n%s", diff)
			}
			if diff := cmp.Diff(orig, view); diff != "" {
				t.Fatalf("event view after changing a copy (-created +view):\n%s", diff)
			}
			sf, ok := h.view().(SharedFinder)
			if !ok {
				t.Fatal("a read transaction cannot find shared objects")
			}
			shared, err := sf.FindShared(k, All())
			if err != nil || len(shared) != 1 {
				t.Fatalf("find shared: %v, %v", shared, err)
			}
			if diff := cmp.Diff(orig, shared[0]); diff != "" { // no secret payload either
				t.Fatalf("shared object after changing copies (-created +shared):\n%s", diff)
			}
			if again, _ := sf.FindShared(k, All()); len(again) != 1 || again[0] != shared[0] {
				t.Fatal("two shared finds returned different objects; want the one the store holds")
			}
		})
	}
}

// uncopyable lists, among the fields reachable from t, those that
// deepCopy cannot copy deeply: unexported fields that hold a reference
// (outside time.Time, whose location is immutable), and fields of a kind
// it shares (channels, functions, unsafe pointers) or that hide their
// dynamic type (interfaces).
func uncopyable(t reflect.Type, path string, seen map[reflect.Type]bool, out *[]string) {
	if seen[t] || t == timeType {
		return
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Chan, reflect.Func, reflect.UnsafePointer, reflect.Interface:
		*out = append(*out, fmt.Sprintf("%s: %s", path, t))
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		if t.Kind() == reflect.Map {
			uncopyable(t.Key(), path+"[key]", seen, out)
		}
		uncopyable(t.Elem(), path+"[]", seen, out)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			embedded := f.Anonymous && f.Type.Kind() == reflect.Struct // its exported fields are copied
			if !f.IsExported() && !embedded && copierOf(f.Type).deep {
				*out = append(*out, fmt.Sprintf("%s.%s: unexported %s", path, f.Name, f.Type))
			}
			uncopyable(f.Type, path+"."+f.Name, seen, out)
		}
	}
}

// TestDeepCopyAPI checks that the stored types hold nothing deepCopy would
// share with the cached object.
func TestDeepCopyAPI(t *testing.T) {
	var found []string
	seen := map[reflect.Type]bool{}
	for _, k := range Kinds() {
		uncopyable(reflect.TypeOf(k.newObject()), k.String(), seen, &found)
	}
	if len(found) > 0 {
		t.Errorf("fields that reads would share with the cache:\n%s", strings.Join(found, "\n"))
	}
	// The audit finds what it looks for.
	var bad []string
	uncopyable(reflect.TypeFor[copyAll](), "copyAll", map[reflect.Type]bool{}, &bad)
	if want := []string{"copyAll.I: interface {}", "copyAll.hidden: unexported *int"}; !cmp.Equal(bad, want) {
		t.Errorf("audit of copyAll found %q, want %q", bad, want)
	}
	for _, tt := range []struct {
		v    any
		deep bool
	}{{time.Time{}, false}, {api.Meta{}, false}, {api.Platform{}, false}, {api.UpdateConfig{}, false},
		{api.Task{}, true}, {api.SecretBytes{}, true}, {api.Healthcheck{}, true}} {
		if got := copierOf(reflect.TypeOf(tt.v)).deep; got != tt.deep {
			t.Errorf("%T: deep = %v, want %v", tt.v, got, tt.deep)
		}
	}
}

type copyEmbedded struct{ X *int }

type copyTree struct {
	Name  string
	Kids  []*copyTree
	Next  *copyTree
	ByKey map[string]copyTree
}

type copyAll struct {
	P      *int
	S      []string
	Nil    []string
	Empty  []string
	M      map[string][]int
	NilMap map[string]int
	EMap   map[string]int
	Labels map[string]string
	I      any
	IFlat  any
	A      [2]*int
	T      time.Time
	Tree   copyTree
	hidden *int
	copyEmbedded
}

func TestDeepCopy(t *testing.T) {
	one, two, three, four, five := 1, 2, 3, 4, 5
	zone := time.FixedZone("X", 3600)
	src := &copyAll{
		P: &one, S: []string{"a", "b"}, Empty: make([]string, 0, 4), M: map[string][]int{"k": {1, 2}},
		EMap: map[string]int{}, Labels: map[string]string{"a": "b"},
		I: &copyTree{Name: "i", Kids: []*copyTree{{Name: "ik"}}}, IFlat: api.Platform{OS: "linux"},
		A: [2]*int{&two, &three}, T: time.Date(2025, 1, 2, 3, 4, 5, 6, zone),
		Tree: copyTree{Name: "root", Kids: []*copyTree{{Name: "kid"}}, Next: &copyTree{Name: "next"},
			ByKey: map[string]copyTree{"x": {Name: "x", Kids: []*copyTree{{Name: "xk"}}}}},
		hidden: &four, copyEmbedded: copyEmbedded{X: &five},
	}
	got := deepCopy(src)
	if got == src {
		t.Fatal("same pointer")
	}
	if diff := cmp.Diff(src, got, cmp.AllowUnexported(copyAll{})); diff != "" {
		t.Fatalf("copy differs (-src +copy):\n%s", diff)
	}
	if got.Nil != nil || got.NilMap != nil || got.Empty == nil || cap(got.Empty) != 0 || got.EMap == nil {
		t.Errorf("nil and empty: Nil %#v NilMap %#v Empty %#v (cap %d) EMap %#v", got.Nil, got.NilMap, got.Empty, cap(got.Empty), got.EMap)
	}
	if got.T.Location() != zone {
		t.Errorf("time location %v, want the same *Location", got.T.Location())
	}
	if got.hidden != src.hidden {
		t.Error("unexported pointer was copied: deepCopy cannot set it, it should stay shared")
	}
	shared := map[string]bool{
		"P":        got.P == src.P,
		"S":        &got.S[0] == &src.S[0],
		"M":        &got.M["k"][0] == &src.M["k"][0],
		"I":        got.I.(*copyTree) == src.I.(*copyTree) || got.I.(*copyTree).Kids[0] == src.I.(*copyTree).Kids[0],
		"A":        got.A[0] == src.A[0] || got.A[1] == src.A[1],
		"Tree":     got.Tree.Kids[0] == src.Tree.Kids[0] || got.Tree.Next == src.Tree.Next,
		"ByKey":    got.Tree.ByKey["x"].Kids[0] == src.Tree.ByKey["x"].Kids[0],
		"Embedded": got.X == src.X,
	}
	for f, s := range shared {
		if s {
			t.Errorf("%s shares memory with the source", f)
		}
	}
	got.M["new"], got.EMap["new"], got.Labels["a"] = nil, 1, "changed"
	if _, ok := src.M["new"]; ok || len(src.EMap) != 0 || src.Labels["a"] != "b" {
		t.Error("map shared")
	}
	if deepCopy(time.Time{}) != (time.Time{}) || deepCopy[any](nil) != nil || deepCopy((*copyAll)(nil)) != nil {
		t.Error("zero values")
	}
}

// TestSecretPayloadNotCached: the object a record caches never holds the
// opened payload, and every read opens its own.
func TestSecretPayloadNotCached(t *testing.T) {
	h := newFSMHarness(t)
	s := &api.Secret{Meta: api.Meta{ID: "sec"}, Spec: api.SecretSpec{Name: "db", File: "db.age", Data: api.SecretBytes("s3cret")}}
	if errs := h.apply(h.txn(func(tx Tx) error { return tx.Create(s) })); errs[0] != nil {
		t.Fatal(errs[0])
	}
	view := h.view()
	a, err := Get[api.Secret](view, "sec")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Get[api.Secret](h.view(), "sec")
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Spec.Data.Reveal()) != "s3cret" || string(b.Spec.Data.Reveal()) != "s3cret" {
		t.Fatalf("payloads %q %q", a.Spec.Data.Reveal(), b.Spec.Data.Reveal())
	}
	a.Spec.Data[0] = 'X'
	if &a.Spec.Data[0] == &b.Spec.Data[0] || b.Spec.Data.Reveal()[0] != 's' {
		t.Error("two reads share one payload")
	}
	rec, err := getRecord(view.(*readTx).txn, KindSecret, "sec")
	if err != nil || rec == nil {
		t.Fatalf("record: %v %v", rec, err)
	}
	cached, ok := rec.decoded.obj.(*api.Secret)
	if !ok {
		t.Fatalf("cached object %T, want *api.Secret", rec.decoded.obj)
	}
	if cached.Spec.Data != nil {
		t.Errorf("the cached object holds the payload (%d bytes)", len(cached.Spec.Data))
	}
	if c, _ := Get[api.Secret](h.view(), "sec"); string(c.Spec.Data.Reveal()) != "s3cret" {
		t.Errorf("a later read got %q", c.Spec.Data.Reveal())
	}
}

// TestConcurrentFirstReads: readers that race to decode a record never
// read yet, and change what they got, each get the stored object (run
// with -race).
func TestConcurrentFirstReads(t *testing.T) {
	h := newFSMHarness(t)
	now := h.now
	if errs := h.apply(h.txn(func(tx Tx) error {
		for i := range 20 {
			if err := tx.Create(benchTask(i, now)); err != nil {
				return err
			}
		}
		return nil
	})); errs[0] != nil {
		t.Fatal(errs[0])
	}
	view := h.view()
	var wg sync.WaitGroup
	results := make([][]*api.Task, 8)
	for g := range results {
		wg.Go(func() {
			ts, err := Find[api.Task](view, ByService("svc"))
			if err != nil {
				t.Error(err)
				return
			}
			for _, task := range ts {
				task.Spec.Container.Env[0] = fmt.Sprint("G=", g)
				task.Spec.Container.Labels["g"] = fmt.Sprint(g)
				task.Spec.Container.Healthcheck.Retries = uint64(g)
			}
			results[g] = ts
		})
	}
	wg.Wait()
	want, err := Find[api.Task](h.view(), ByService("svc"))
	if err != nil {
		t.Fatal(err)
	}
	for i, task := range want {
		exp := benchTask(int(task.Slot), now)
		exp.Meta = task.Meta
		if diff := cmp.Diff(exp, task); diff != "" {
			t.Fatalf("task %d after concurrent reads (-want +got):\n%s", i, diff)
		}
	}
	for g, ts := range results {
		if len(ts) != 20 || ts[0].Spec.Container.Env[0] != fmt.Sprint("G=", g) {
			t.Errorf("reader %d: lost its own change", g)
		}
	}
}
