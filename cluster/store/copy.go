package store

import (
	"maps"
	"reflect"
	"sync"
)

// deepCopy returns a copy of v that shares no mutable memory with it, so
// that a reader may change what it got without touching the object a
// record caches (see record.object). It walks v by reflection:
//
//   - a struct is assigned whole first, so that unexported fields (such as
//     time.Time's location) are kept as they are; then each exported field
//     that holds a reference is copied deeply. An unexported field is never
//     copied deeply: whatever it points to stays shared (TestDeepCopyAPI
//     checks that no stored type has one, other than time.Time's location,
//     which is immutable);
//   - pointers, slices and maps get new memory (nil stays nil, and an empty
//     slice or map stays empty, not nil); map keys are kept as they are;
//   - an interface gets a copy of its dynamic value;
//   - strings are immutable and shared; channels, functions and unsafe
//     pointers are shared (stored objects have none: they come from JSON).
//
// Whether a type holds any reference that must be copied is worked out
// once per type and cached, so a flat value (time.Time, a struct of
// numbers, a []uint64's elements) is copied with one assignment. v must
// be a tree: shared or cyclic pointers are copied as many times as they
// are reached (forever, for a cycle). Objects decoded from JSON are trees.
func deepCopy[T any](v T) T {
	// The dynamic value: for an interface T (api.Object), what it holds.
	src := reflect.ValueOf(any(v))
	if !src.IsValid() {
		return v // a nil interface
	}
	c := copierOf(src.Type())
	if !c.deep {
		return v
	}
	if src.Kind() == reflect.Pointer {
		if src.IsNil() {
			return v
		}
		return c.clone(src).Interface().(T) // no cell for the pointer itself
	}
	var out T
	dst := reflect.ValueOf(&out).Elem()
	dst.Set(src)
	c.fix(dst, src)
	return out
}

// copier copies values of one type deeply.
type copier struct {
	// deep is false when an assignment is a deep copy: the type holds no
	// pointer, slice, map or interface that deepCopy would copy.
	deep bool
	// fix replaces the references in dst, which holds a shallow copy of
	// src (an assignment), with deep copies. Only called when deep.
	fix func(dst, src reflect.Value)
	// clone returns a new pointer to a deep copy of what src, a non-nil
	// pointer, points to. Pointer types only.
	clone func(src reflect.Value) reflect.Value
}

var copiers sync.Map // reflect.Type → *copier

var stringMapType = reflect.TypeFor[map[string]string]()

func copierOf(t reflect.Type) *copier {
	if c, ok := copiers.Load(t); ok {
		return c.(*copier)
	}
	building := map[reflect.Type]*copier{}
	c := buildCopier(t, building)
	for bt, bc := range building {
		copiers.LoadOrStore(bt, bc)
	}
	return c
}

// buildCopier makes the copier of t. A type being built is in building,
// so that a recursive type (reached again through a pointer, slice, map
// or interface, which are deep whatever their element is) refers to its
// copier; fix closures therefore read elem.deep and elem.fix when they
// run, not when they are made.
func buildCopier(t reflect.Type, building map[reflect.Type]*copier) *copier {
	if c, ok := copiers.Load(t); ok {
		return c.(*copier)
	}
	if c, ok := building[t]; ok {
		return c
	}
	c := &copier{}
	building[t] = c
	switch t.Kind() {
	case reflect.Pointer:
		elem := buildCopier(t.Elem(), building)
		et := t.Elem()
		c.deep = true
		c.clone = func(src reflect.Value) reflect.Value {
			p := reflect.New(et)
			p.Elem().Set(src.Elem())
			if elem.deep {
				elem.fix(p.Elem(), src.Elem())
			}
			return p
		}
		c.fix = func(dst, src reflect.Value) {
			if !src.IsNil() {
				dst.Set(c.clone(src))
			}
		}
	case reflect.Slice:
		elem := buildCopier(t.Elem(), building)
		c.deep = true
		c.fix = func(dst, src reflect.Value) {
			n := src.Len()
			if n == 0 {
				// nil stays nil, empty stays empty; with no capacity left
				// an append cannot reach src's array.
				if src.Cap() > 0 {
					dst.SetCap(0)
				}
				return
			}
			// A new array in place (Grow on a nil slice), rather than
			// MakeSlice, whose slice header is one more allocation.
			dst.SetZero()
			dst.Grow(n)
			dst.SetLen(n)
			reflect.Copy(dst, src)
			if elem.deep {
				for i := range n {
					elem.fix(dst.Index(i), src.Index(i))
				}
			}
		}
	case reflect.Array:
		elem := buildCopier(t.Elem(), building)
		c.deep = elem.deep && t.Len() > 0
		c.fix = func(dst, src reflect.Value) {
			for i := range src.Len() {
				elem.fix(dst.Index(i), src.Index(i))
			}
		}
	case reflect.Map:
		elem := buildCopier(t.Elem(), building)
		kt, et := t.Key(), t.Elem()
		c.deep = true
		if t == stringMapType {
			// Labels, sysctls, driver options: maps.Clone copies the
			// map's groups wholesale instead of entry by entry.
			c.fix = func(dst, src reflect.Value) {
				if !src.IsNil() {
					dst.Set(reflect.ValueOf(maps.Clone(src.Interface().(map[string]string))))
				}
			}
			break
		}
		c.fix = func(dst, src reflect.Value) {
			if src.IsNil() {
				return
			}
			m := reflect.MakeMapWithSize(t, src.Len())
			k, v := reflect.New(kt).Elem(), reflect.New(et).Elem()
			var it reflect.MapIter
			it.Reset(src)
			for it.Next() {
				k.SetIterKey(&it)
				v.SetIterValue(&it)
				if elem.deep {
					elem.fix(v, it.Value())
				}
				m.SetMapIndex(k, v)
			}
			dst.Set(m)
		}
	case reflect.Interface:
		c.deep = true
		c.fix = func(dst, src reflect.Value) {
			if src.IsNil() {
				return
			}
			e := src.Elem()
			ec := copierOf(e.Type())
			if !ec.deep {
				return // a flat value in an interface cannot be changed through it
			}
			v := reflect.New(e.Type()).Elem()
			v.Set(e)
			ec.fix(v, e)
			dst.Set(v)
		}
	case reflect.Struct:
		type field struct {
			i int
			c *copier
		}
		var fields []field
		for i := range t.NumField() {
			f := t.Field(i)
			// Exported fields, and the exported fields of an embedded
			// struct (which reflect lets us set even when the embedded
			// type is unexported); other unexported fields stay shared.
			if !f.IsExported() && !(f.Anonymous && f.Type.Kind() == reflect.Struct) {
				continue
			}
			if fc := buildCopier(f.Type, building); fc.deep {
				fields = append(fields, field{i, fc})
			}
		}
		c.deep = len(fields) > 0
		c.fix = func(dst, src reflect.Value) {
			for _, f := range fields {
				f.c.fix(dst.Field(f.i), src.Field(f.i))
			}
		}
	}
	return c
}
