package store

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
)

// Raft entries carry commands. The first byte is the command type:
//
//	cmdTxn:   JSON txnCmd — a whole transaction.
//	cmdChunk: txnID(16) | uvarint seq | last(1) | bytes — a slice of an
//	          encoded cmdTxn too large for one entry; the FSM applies the
//	          transaction when the last chunk commits.
//	cmdAbort: txnID(16) — drop the staged chunks of a transaction.
//	cmdGroup: uvarint n | n × bytes(encoded cmdTxn) — independent
//	          transactions of concurrent proposers committed as one entry
//	          (group commit, commit.go); each is checked and applied on
//	          its own, in order, so one that fails changes nothing and
//	          fails alone.
const (
	cmdTxn   byte = 1
	cmdChunk byte = 2
	cmdAbort byte = 3
	cmdGroup byte = 4
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
//
// txnFormatS2 is the same body after the format byte, compressed as one
// s2 block (github.com/klauspost/compress/s2, Snappy's successor). The
// objects of a transaction are JSON with the same keys and mostly the same
// values (a service's tasks): the benchmark's 100 tasks shrink from 50 KB
// to 2 KB, and every copy Raft makes of an entry on every manager (the
// msgpack encoding into the bolt log and its pages, the wire, the follower's
// decoding) shrinks with it: those copies were 40% of the bytes a 3-manager
// cluster allocated, which is what drives garbage collection. Compressing
// costs the proposer ~0.4 µs per object and decompressing each manager
// ~0.3 µs; the FSM keeps objects uncompressed, so reads pay nothing. The
// proposer compresses only when it helps and stays within maxS2Ratio.
const (
	txnFormat   = 1
	txnFormatS2 = 2
)

// maxS2Ratio bounds what a compressed body may claim to expand to (plus
// 1 MiB), so that a malformed entry cannot make every manager allocate
// without bound; a body that compresses better is proposed uncompressed.
const maxS2Ratio = 256

func s2Limit(compressed int) int { return 1<<20 + maxS2Ratio*compressed }

// compressTxn returns an encoded cmdTxn in txnFormatS2 when that is
// smaller, else b itself.
func compressTxn(b []byte) []byte {
	const minSize = 128 // below, a block's header eats the gain
	if len(b) < minSize || b[0] != cmdTxn || b[1] != txnFormat {
		return b
	}
	out := make([]byte, 2, 2+s2.MaxEncodedLen(len(b)-2))
	out[0], out[1] = cmdTxn, txnFormatS2
	out = append(out, s2.Encode(out[2:cap(out)], b[2:])...) // encoded in place: the append only extends out
	if len(out) >= len(b) || len(b)-2 > s2Limit(len(out)-2) {
		return b
	}
	return out
}

// bodyPool holds the buffers transactions are decompressed into: decoding
// copies out everything a record keeps, so the buffer is free afterwards.
var bodyPool = sync.Pool{New: func() any { return new([]byte) }}

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
	return compressTxn(b), nil
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

// strLike is str, but returns like itself when the bytes are the same,
// without allocating.
func (r *reader) strLike(like string) string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	b := r.b[:n]
	r.b = r.b[n:]
	if string(b) == like {
		return like
	}
	return string(b)
}

// decodeTxn parses and checks an encoded cmdTxn, compressed or not.
func decodeTxn(b []byte) (*txnCmd, error) {
	if len(b) < 2 || b[0] != cmdTxn || (b[1] != txnFormat && b[1] != txnFormatS2) {
		return nil, fmt.Errorf("%w: not a transaction", ErrInvalid)
	}
	if b[1] == txnFormat {
		return decodeTxnBody(b[2:])
	}
	n, err := s2.DecodedLen(b[2:])
	if err != nil || n > s2Limit(len(b)-2) {
		return nil, fmt.Errorf("%w: malformed compressed transaction", ErrInvalid)
	}
	buf := bodyPool.Get().(*[]byte)
	defer bodyPool.Put(buf)
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	body, err := s2.Decode((*buf)[:n], b[2:])
	if err != nil {
		return nil, fmt.Errorf("%w: malformed compressed transaction: %v", ErrInvalid, err)
	}
	return decodeTxnBody(body)
}

// decodeTxnBody parses what follows the format byte of a txnFormat body;
// everything it returns is copied out of body.
func decodeTxnBody(body []byte) (*txnCmd, error) {
	r := &reader{b: body}
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
		var prev Keys // the changes of a transaction mostly share their keys: share the strings too
		if i > 0 {
			prev = t.Ops[i-1].Keys
		}
		o.Keys = Keys{Name: r.strLike(prev.Name), Stack: r.strLike(prev.Stack), Service: r.strLike(prev.Service),
			Node: r.strLike(prev.Node), Desired: r.strLike(prev.Desired)}
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

// groupOverhead is what a transaction of n bytes adds to a cmdGroup
// besides its bytes: its length prefix.
func groupOverhead(n int) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], uint64(n))
}

// groupHeader bounds the bytes a cmdGroup spends before its members.
const groupHeader = 1 + binary.MaxVarintLen64

// encodeGroup frames encoded transactions as one cmdGroup entry.
func encodeGroup(txns [][]byte) []byte {
	size := groupHeader
	for _, t := range txns {
		size += groupOverhead(len(t)) + len(t)
	}
	b := make([]byte, 0, size)
	b = append(b, cmdGroup)
	b = binary.AppendUvarint(b, uint64(len(txns)))
	for _, t := range txns {
		b = binary.AppendUvarint(b, uint64(len(t)))
		b = append(b, t...)
	}
	return b
}

// decodeGroup splits a cmdGroup into its members' encodings (slices of b,
// not copies; decodeTxn copies what a record keeps). It checks only the
// framing: each member is decoded, checked and applied on its own.
func decodeGroup(b []byte) ([][]byte, error) {
	if len(b) < 2 || b[0] != cmdGroup {
		return nil, fmt.Errorf("%w: not a transaction group", ErrInvalid)
	}
	r := &reader{b: b[1:]}
	n := r.uvarint()
	if r.err != nil || n == 0 || n > uint64(len(r.b)) { // every member takes more than a byte
		return nil, fmt.Errorf("%w: malformed transaction group", ErrInvalid)
	}
	out := make([][]byte, n)
	for i := range out {
		size := r.uvarint()
		if r.err != nil || size > uint64(len(r.b)) {
			return nil, fmt.Errorf("%w: truncated transaction group", ErrInvalid)
		}
		out[i], r.b = r.b[:size:size], r.b[size:]
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes after transaction group", ErrInvalid)
	}
	return out, nil
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

// An object ID is 26 lowercase base32hex characters of 128 bits:
//
//	seq ^ base[0:2] (16 bits) | base (64 random bits) | time (48 bits, Unix ms)
//
// The IDs of one transaction share one random base (drawn again after
// 65536 IDs) and number it (idSeq). The seq, masked by the base so that
// IDs look random from their first character, comes first: a 12-character
// short ID (hostnames, tables, prefix lookups) differs within a
// transaction and, but for a 2^-44 chance, across them. The base makes IDs
// unique across transactions and managers (a 2^-64 chance of two equal
// bases); time comes last. The id index keys an ID time, base, seq
// (idKey): a transaction's creates share their key but for the last two
// bytes, and come in order, so they append to one small subtree of each
// index instead of being scattered among the creates of the transactions
// committed with them. IDs carry no secret.

// idSeq makes the IDs of one transaction; its zero value is ready.
type idSeq struct {
	base [8]byte
	n    int // IDs made with base; 0: no base yet
}

// next returns an ID created at t.
func (g *idSeq) next(t time.Time) (string, error) {
	if g.n == 0 || g.n > 0xffff {
		if _, err := rand.Read(g.base[:]); err != nil {
			return "", fmt.Errorf("generate id: %w", err)
		}
		g.n = 0
	}
	var b [16]byte
	binary.BigEndian.PutUint16(b[:2], uint16(g.n))
	b[0] ^= g.base[0]
	b[1] ^= g.base[1]
	g.n++
	copy(b[2:10], g.base[:])
	ms := uint64(t.UnixMilli())
	for i := 15; i >= 10; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	return idEncoding.EncodeToString(b[:]), nil
}

// newID returns a lone ID created at t, with a base of its own.
func newID(t time.Time) (string, error) { return new(idSeq).next(t) }

// idEncoding is base32hex in lowercase: its alphabet is in byte order, so
// the time part of an ID sorts as the time does.
var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// idKey is the id index's key of an ID, NUL-terminated. A canonical
// 26-character ID (what idSeq makes) is decoded to its 16 bytes and keyed
// time first: idKeyDecoded, the 6 bytes of time, the 8 of the base, the 2
// of the seq.
// Objects created close together then share a key prefix, so a batch of
// creates lands in one small subtree of each radix-tree index (the
// secondary indexes end with this key too) instead of copying a path from
// the root for every object; and binary keys, 256-ary, are shorter and
// make fewer tree levels and fewer node splits than base32 text (32-ary),
// which is most of what applying a create costs on every manager.
//
// Any other ID is keyed as it is, behind idKeyEscape when it starts with
// either tag byte, so every ID (a caller's too) has exactly one key and no
// two IDs share one.
func idKey(id string) []byte {
	if len(id) == 26 {
		if raw, ok := decodeID(id); ok {
			b := make([]byte, 0, 1+16+1)
			b = append(b, idKeyDecoded)
			b = append(b, raw[10:]...)                  // time
			b = append(b, raw[2:10]...)                 // base
			b = append(b, raw[0]^raw[2], raw[1]^raw[3]) // seq
			return append(b, 0)
		}
	}
	b := make([]byte, 0, 1+len(id)+1)
	if len(id) > 0 && id[0] >= idKeyEscape {
		b = append(b, idKeyEscape)
	}
	b = append(b, id...)
	return append(b, 0)
}

// Tag bytes of id index keys; neither starts valid UTF-8.
const (
	idKeyEscape  byte = 0xfe
	idKeyDecoded byte = 0xff
)

// idDecodeMap maps an ID character to its 5 bits, 0xff when it is not one.
var idDecodeMap = func() (m [256]byte) {
	for i := range m {
		m[i] = 0xff
	}
	for i, c := range "0123456789abcdefghijklmnopqrstuv" {
		m[c] = byte(i)
	}
	return m
}()

// decodeID decodes a 26-character ID to its 16 bytes; ok is false unless
// id is in idEncoding's canonical form (its last 2 bits zero), the one
// encoding of those bytes, so that decoding is injective.
func decodeID(id string) (raw [16]byte, ok bool) {
	var acc uint64
	bits, j := 0, 0
	for i := 0; i < 26; i++ {
		v := idDecodeMap[id[i]]
		if v == 0xff {
			return raw, false
		}
		acc = acc<<5 | uint64(v)
		if bits += 5; bits >= 8 {
			bits -= 8
			raw[j] = byte(acc >> bits)
			j++
		}
	}
	return raw, acc&(1<<bits-1) == 0
}
