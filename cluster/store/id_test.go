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
	// Lone IDs have bases of their own: short IDs of one instant differ.
	if a[:12] == b[:12] {
		t.Errorf("short ids of one instant collide: %q %q", a, b)
	}
	// The time part leads the index key: one instant shares a prefix and
	// later IDs sort after.
	ka, kb, kc := idKey(a), idKey(b), idKey(c)
	if len(ka) != 18 || ka[0] != idKeyDecoded {
		t.Fatalf("key of %q is %x: want the tag, 16 bytes and NUL", a, ka)
	}
	if !bytes.Equal(ka[:7], kb[:7]) {
		t.Errorf("keys of one instant %q %q share no time prefix", ka, kb)
	}
	if bytes.Compare(ka, kc) >= 0 || bytes.Compare(kb, kc) >= 0 {
		t.Errorf("keys %q %q do not sort before the later %q", ka, kb, kc)
	}
	raw, err := idEncoding.DecodeString(a)
	if err != nil || len(raw) != 16 {
		t.Fatalf("decode %q: %v", a, err)
	}
	if got, ok := decodeID(a); !ok || !bytes.Equal(got[:], raw) {
		t.Errorf("decodeID(%q) = %x, %v; want %x", a, got, ok, raw)
	}
}

// TestIDSeq: the IDs of one transaction have distinct short IDs, share
// their key but for the seq and sort in creation order; another
// transaction of the same instant has keys of its own.
func TestIDSeq(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var g, other idSeq
	short := map[string]bool{}
	var prev []byte
	for i := range 1000 {
		id, err := g.next(t0)
		if err != nil {
			t.Fatal(err)
		}
		if short[id[:12]] {
			t.Fatalf("id %d: short id %s repeats", i, id[:12])
		}
		short[id[:12]] = true
		k := idKey(id)
		if prev != nil && (!bytes.Equal(k[:15], prev[:15]) || bytes.Compare(prev, k) >= 0) {
			t.Fatalf("id %d: key %x after %x: want the same time and base, a later seq", i, k, prev)
		}
		prev = k
	}
	o, err := other.next(t0)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(idKey(o)[:15], prev[:15]) {
		t.Errorf("two transactions share a base: %x %x", idKey(o), prev)
	}
	// Lone IDs (seq 0) look random from their first character on.
	first := map[byte]bool{}
	for range 64 {
		id, err := newID(t0)
		if err != nil {
			t.Fatal(err)
		}
		first[id[0]] = true
	}
	if len(first) < 8 {
		t.Errorf("64 lone ids start with only %d different characters", len(first))
	}
	g.n = 0x10000 // the seq is exhausted: a new base
	id, err := g.next(t0)
	if err != nil {
		t.Fatal(err)
	}
	if k := idKey(id); bytes.Equal(k[7:15], prev[7:15]) || !bytes.Equal(k[15:17], []byte{0, 0}) {
		t.Errorf("after 65536 ids: key %x, want a new base and seq 0", k)
	}
}

// idFromKey inverts idKey: that it exists is what makes idKey injective.
func idFromKey(k []byte) string {
	k = k[:len(k)-1] // NUL
	switch {
	case len(k) > 0 && k[0] == idKeyDecoded:
		var raw [16]byte
		copy(raw[10:], k[1:7])
		copy(raw[2:10], k[7:15])
		raw[0], raw[1] = k[15]^raw[2], k[16]^raw[3]
		return idEncoding.EncodeToString(raw[:])
	case len(k) > 0 && k[0] == idKeyEscape:
		return string(k[1:])
	}
	return string(k)
}

var idKeySeeds = []string{"", "n1", "abcdefghijklmnopqrstuvwxyz", "qrstuvwxyzabcdefghijklmnop", "abcdefghijklmnopqrstuvwxy",
	"abcdefghijklmnopqrstuvwxyz0",
	"0123456789abcdefghijklmnop", "0123456789abcdefghijklmnos", // canonical: last 2 bits zero
	"0123456789abcdefghijklmnoq", "0123456789abcdefghijklmnov", // same bytes, non-canonical
	"0123456789ABCDEFGHIJKLMNOP", "0123456789abcdefghijklmno-",
	"\xff0123456789abcdef", "\xfe\x01", "\xfe", "\xff", "\xfd"}

func TestIDKeyInjective(t *testing.T) {
	seen := map[string]string{}
	for _, id := range idKeySeeds {
		k := idKey(id)
		if got := idFromKey(k); got != id {
			t.Errorf("idKey(%q) = %x inverts to %q", id, k, got)
		}
		if other, ok := seen[string(k)]; ok {
			t.Errorf("ids %q and %q share key %x", other, id, k)
		}
		seen[string(k)] = id
	}
}

func FuzzIDKey(f *testing.F) {
	for _, id := range idKeySeeds {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		k := idKey(id)
		if k[len(k)-1] != 0 {
			t.Fatalf("idKey(%q) = %x is not NUL-terminated", id, k)
		}
		if got := idFromKey(k); got != id {
			t.Fatalf("idKey(%q) = %x inverts to %q", id, k, got)
		}
	})
}
