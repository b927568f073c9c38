package store

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// Raft entries carry commands. The first byte is the command type:
//
//	cmdTxn:   JSON txnCmd — a whole transaction.
//	cmdChunk: txnID(16) | uvarint seq | last(1) | bytes — a slice of an
//	          encoded cmdTxn too large for one entry; the FSM applies the
//	          transaction when the last chunk commits.
//	cmdAbort: txnID(16) — drop the staged chunks of a transaction.
const (
	cmdTxn   byte = 1
	cmdChunk byte = 2
	cmdAbort byte = 3
)

// Action is what a change did to an object.
type Action uint8

const (
	ActionCreate Action = iota + 1
	ActionUpdate
	ActionDelete
)

var actionNames = []string{"", "create", "update", "delete"}

func (a Action) String() string {
	if a > 0 && int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// op is one change of a transaction, with everything the FSM needs to
// apply it deterministically.
type op struct {
	Action Action `json:"a"`
	Kind   Kind   `json:"k"`
	ID     string `json:"id"`
	// Version is the version the proposer read: required for updates;
	// 0 on a delete means unconditional.
	Version uint64          `json:"v,omitempty"`
	Keys    Keys            `json:"x,omitzero"`
	Raw     json.RawMessage `json:"raw,omitempty"`
	// Sealed is a secret's payload, sealed with the data key. On an update
	// nil keeps the stored payload.
	Sealed []byte `json:"s,omitempty"`
}

// txnCmd is a transaction as proposed. Time stamps CreatedAt/UpdatedAt.
type txnCmd struct {
	Time time.Time `json:"t"`
	Ops  []op      `json:"ops"`
}

// txnFormat versions the binary layout of a cmdTxn body:
//
//	format(1) | unix nanos (8, big endian) | uvarint ops | op...
//	op: action(1) kind(1) str(id) uvarint(version) str(name) str(stack)
//	    str(service) str(node) str(desired) bytes(raw) optbytes(sealed)
//
// str and bytes are uvarint length + data; optbytes is uvarint(len+1),
// 0 for nil. A binary layout keeps apply cheap on every manager: decoding
// is slicing, not parsing.
const txnFormat = 1

func encodeTxn(t *txnCmd) ([]byte, error) {
	size := 1 + 1 + 8 + binary.MaxVarintLen64
	for i := range t.Ops {
		o := &t.Ops[i]
		size += 2 + 8*binary.MaxVarintLen64 + len(o.ID) + len(o.Keys.Name) + len(o.Keys.Stack) +
			len(o.Keys.Service) + len(o.Keys.Node) + len(o.Keys.Desired) + len(o.Raw) + len(o.Sealed)
	}
	b := make([]byte, 0, size)
	b = append(b, cmdTxn, txnFormat)
	b = binary.BigEndian.AppendUint64(b, uint64(t.Time.UnixNano()))
	b = binary.AppendUvarint(b, uint64(len(t.Ops)))
	str := func(s []byte) { b = binary.AppendUvarint(b, uint64(len(s))); b = append(b, s...) }
	for i := range t.Ops {
		o := &t.Ops[i]
		b = append(b, byte(o.Action), byte(o.Kind))
		str([]byte(o.ID))
		b = binary.AppendUvarint(b, o.Version)
		for _, k := range []string{o.Keys.Name, o.Keys.Stack, o.Keys.Service, o.Keys.Node, o.Keys.Desired} {
			str([]byte(k))
		}
		str(o.Raw)
		if o.Sealed == nil {
			b = append(b, 0)
		} else {
			b = binary.AppendUvarint(b, uint64(len(o.Sealed))+1)
			b = append(b, o.Sealed...)
		}
	}
	return b, nil
}

// reader decodes the binary layout; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	r.err, r.b = fmt.Errorf("%w: truncated or malformed command", ErrInvalid), nil
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes returns a copy, so records never pin a whole Raft entry.
func (r *reader) bytes(n uint64) []byte {
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	out := make([]byte, n)
	copy(out, r.b)
	r.b = r.b[n:]
	return out
}

func (r *reader) str() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// decodeTxn parses and checks an encoded cmdTxn.
func decodeTxn(b []byte) (*txnCmd, error) {
	if len(b) < 2 || b[0] != cmdTxn || b[1] != txnFormat {
		return nil, fmt.Errorf("%w: not a transaction", ErrInvalid)
	}
	r := &reader{b: b[2:]}
	if len(r.b) < 8 {
		return nil, fmt.Errorf("%w: truncated transaction", ErrInvalid)
	}
	t := &txnCmd{Time: time.Unix(0, int64(binary.BigEndian.Uint64(r.b))).UTC()}
	r.b = r.b[8:]
	n := r.uvarint()
	if n > uint64(len(r.b)) { // every op takes more than a byte
		return nil, fmt.Errorf("%w: %d changes in %d bytes", ErrInvalid, n, len(r.b))
	}
	t.Ops = make([]op, n)
	for i := range t.Ops {
		o := &t.Ops[i]
		o.Action, o.Kind = Action(r.byte()), Kind(r.byte())
		o.ID = r.str()
		o.Version = r.uvarint()
		o.Keys = Keys{Name: r.str(), Stack: r.str(), Service: r.str(), Node: r.str(), Desired: r.str()}
		o.Raw = r.bytes(r.uvarint())
		if sn := r.uvarint(); sn > 0 {
			o.Sealed = r.bytes(sn - 1)
		}
		if r.err != nil {
			return nil, r.err
		}
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes", ErrInvalid)
	}
	if err := checkOps(t.Ops); err != nil {
		return nil, err
	}
	return t, nil
}

// checkOps rejects malformed changes and changes of one object twice.
func checkOps(ops []op) error {
	if len(ops) == 0 {
		return fmt.Errorf("%w: no changes", ErrInvalid)
	}
	type key struct {
		k  Kind
		id string
	}
	seen := make(map[key]bool, len(ops))
	for i := range ops {
		o := &ops[i]
		if o.Action < ActionCreate || o.Action > ActionDelete || !o.Kind.valid() || o.ID == "" {
			return fmt.Errorf("%w: change %d is malformed", ErrInvalid, i)
		}
		if o.Action != ActionDelete && (len(o.Raw) < 2 || o.Raw[0] != '{') {
			return fmt.Errorf("%w: change %d has no object", ErrInvalid, i)
		}
		if o.Sealed != nil && o.Kind != KindSecret {
			return fmt.Errorf("%w: change %d: only secrets carry sealed data", ErrInvalid, i)
		}
		k := key{o.Kind, o.ID}
		if seen[k] {
			return fmt.Errorf("%w: %s %s changed twice in one transaction", ErrInvalid, o.Kind, o.ID)
		}
		seen[k] = true
	}
	return nil
}

type txnID [16]byte

func newTxnID() txnID {
	var id txnID
	_, _ = rand.Read(id[:]) // never fails on Linux; a zero ID would still be distinct per staged run
	return id
}

// chunk is a decoded cmdChunk.
type chunk struct {
	id   txnID
	seq  uint64
	last bool
	data []byte
}

const chunkHeader = 1 + 16 + binary.MaxVarintLen64 + 1

// splitTxn cuts an encoded transaction into cmdChunk entries of at most max bytes.
func splitTxn(enc []byte, max int) [][]byte {
	id := newTxnID()
	per := max - chunkHeader
	var out [][]byte
	for seq := uint64(0); len(enc) > 0; seq++ {
		n := min(per, len(enc))
		b := make([]byte, 0, chunkHeader+n)
		b = append(b, cmdChunk)
		b = append(b, id[:]...)
		b = binary.AppendUvarint(b, seq)
		last := byte(0)
		if n == len(enc) {
			last = 1
		}
		b = append(b, last)
		b = append(b, enc[:n]...)
		out = append(out, b)
		enc = enc[n:]
	}
	return out
}

func decodeChunk(b []byte) (chunk, error) {
	var c chunk
	if len(b) < 1+16+1+1 || b[0] != cmdChunk {
		return c, fmt.Errorf("%w: short chunk", ErrInvalid)
	}
	copy(c.id[:], b[1:17])
	seq, n := binary.Uvarint(b[17:])
	if n <= 0 || len(b) < 17+n+1 {
		return c, fmt.Errorf("%w: malformed chunk", ErrInvalid)
	}
	c.seq = seq
	switch b[17+n] {
	case 0:
	case 1:
		c.last = true
	default:
		return c, fmt.Errorf("%w: malformed chunk", ErrInvalid)
	}
	c.data = b[17+n+1:]
	return c, nil
}

func encodeAbort(id txnID) []byte { return append([]byte{cmdAbort}, id[:]...) }

func decodeAbort(b []byte) (txnID, error) {
	var id txnID
	if len(b) != 17 || b[0] != cmdAbort {
		return id, fmt.Errorf("%w: malformed abort", ErrInvalid)
	}
	copy(id[:], b[1:])
	return id, nil
}

// newID returns an object ID created at t: 26 lowercase base32hex
// characters of 128 bits, 80 random then 48 of t in Unix milliseconds.
// The random part comes first, so a 12-character short ID (hostnames,
// tables, prefix lookups) stays as distinct as a fully random one; the time
// part is what idKey puts first in the id index (see there). IDs carry no
// secret.
func newID(t time.Time) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:10]); err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	ms := uint64(t.UnixMilli())
	for i := 15; i >= 10; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	return idEncoding.EncodeToString(b[:]), nil
}

// idEncoding is base32hex in lowercase: its alphabet is in byte order, so
// the time part of an ID sorts as the time does.
var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// idRandChars is the length of the random part of a newID: 80 bits.
const idRandChars = 16

// idKey is the id index's key of an ID, NUL-terminated. A 26-character ID
// (what newID makes) is rotated so that its time part comes first: objects
// created close together then share a key prefix, and a batch of creates
// lands in one small subtree of each radix-tree index (the secondary
// indexes end with this key too) instead of copying a path from the root
// for every object, which is most of what applying costs on every manager.
// Rotation is a bijection on strings of one length and other lengths are
// kept as they are, so any ID (a caller's too) has exactly one key.
func idKey(id string) []byte {
	b := make([]byte, 0, len(id)+1)
	if len(id) == 26 {
		b = append(append(b, id[idRandChars:]...), id[:idRandChars]...)
	} else {
		b = append(b, id...)
	}
	return append(b, 0)
}
