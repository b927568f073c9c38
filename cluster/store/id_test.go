package store

import (
	"bytes"
	"testing"
	"time"
)

func TestNewIDLayout(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	a, err := newID(t0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newID(t0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newID(t0.Add(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 26 || a == b {
		t.Fatalf("ids %q %q: want 26 distinct characters", a, b)
	}
	// The random part leads: short IDs of one instant differ.
	if a[:12] == b[:12] {
		t.Errorf("short ids of one instant collide: %q %q", a, b)
	}
	// The time part leads the index key: one instant shares a prefix and
	// later IDs sort after.
	ka, kb, kc := idKey(a), idKey(b), idKey(c)
	if !bytes.Equal(ka[:9], kb[:9]) {
		t.Errorf("keys of one instant %q %q share no time prefix", ka, kb)
	}
	if bytes.Compare(ka, kc) >= 0 || bytes.Compare(kb, kc) >= 0 {
		t.Errorf("keys %q %q do not sort before the later %q", ka, kb, kc)
	}
	if raw, err := idEncoding.DecodeString(a); err != nil || len(raw) != 16 {
		t.Errorf("decode %q: %v", a, err)
	}
}

func TestIDKeyInjective(t *testing.T) {
	ids := []string{"", "n1", "abcdefghijklmnopqrstuvwxyz", "qrstuvwxyzabcdefghijklmnop", "abcdefghijklmnopqrstuvwxy", "abcdefghijklmnopqrstuvwxyz0"}
	seen := map[string]string{}
	for _, id := range ids {
		k := string(idKey(id))
		if other, ok := seen[k]; ok {
			t.Errorf("ids %q and %q share key %q", other, id, k)
		}
		seen[k] = id
	}
}
