package nft

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Rule is one rule of a chain: its nft text and the statements that make
// it. Build renders the text; Apply turns the statements into netlink
// expressions, and only for the rules it sends. Both come from the same
// statement, so equal texts mean equal rules (Apply compares rules by
// their text). The expressions are what nft itself emits for the text,
// implicit dependencies included (meta nfproto ipv4 before an ip header
// field, meta l4proto before a port), so that `nft list table` prints
// the rule back as Text.
type Rule struct {
	Text  string
	stmts []stmt
}

func (r Rule) String() string { return r.Text }

type stmtKind uint8

const (
	stIPPrefix    stmtKind = iota // ip <field> [!=] <addr>[/bits]
	stIPSet                       // ip <field> [!=] @<name>
	stIPVmap                      // ip <field> vmap @<name>
	stCtEstRel                    // ct state established,related
	stL4Proto                     // meta l4proto <proto>
	stL4ProtoIn                   // meta l4proto { <protos> }
	stDport                       // <proto> dport <port>
	stOifname                     // oifname [!=] "<name>"
	stMarkHas                     // meta mark & <m> == <m>
	stMarkOr                      // meta mark set meta mark | <m>
	stDNAT                        // dnat ip to <addr>[:<port>]
	stMasq                        // masquerade
	stRejectTCP                   // reject with tcp reset
	stRejectICMPX                 // reject [with icmpx <code>]
	stAccept                      // accept
	stGoto                        // goto <name>
	stNumgenVmap                  // numgen random mod N vmap { i : goto <chains[i]> }
	stNFProto4                    // meta nfproto ipv4
	stFibLocal                    // fib daddr type local
	stPortVmap                    // meta l4proto . th dport vmap @<name>
	stCtDNAT                      // ct status dnat
	stCtMarkHas                   // ct mark & <m> == <m>
	stCtMarkOr                    // ct mark set ct mark | <m>
)

// stmt is one statement of a rule, its operands inline.
type stmt struct {
	kind   stmtKind
	neq    bool
	field  uint8 // ip header offset (saddr, daddr), or a protocol
	bits   uint8 // prefix length
	addr   [4]byte
	n      uint32 // mark, port, icmpx code
	port   uint16 // dnat: the new port, 0 to keep it
	name   string // set, map, chain or interface
	protos []byte
	chains []string
}

// anonSet is a constant anonymous set (or verdict map) of one rule.
type anonSet struct {
	keyType nftables.SetDatatype
	isMap   bool
	elems   []nftables.SetElement
}

// Registers: nftables' verdict register, the first two 16-byte data
// registers, and the second 4-byte one (the second field of a
// concatenation, reg1 holding the first).
const (
	regVerdict = 0
	reg1       = unix.NFT_REG_1
	reg2       = unix.NFT_REG_2
	reg32Field = unix.NFT_REG32_01
)

// Constants of the expressions (linux/netfilter/nf_tables.h and others).
const (
	icmpxPortUnreachable = 1 // nft_reject_inet_code
	icmpxAdminProhibited = 3
	ipv4SaddrOffset      = 12
	ipv4DaddrOffset      = 16
	transportDportOffset = 2
	ctStateEstablished   = 0x02
	ctStateRelated       = 0x04
	ctStatusDstNAT       = 0x20 // IPS_DST_NAT
	ifNameSize           = 16
	protoTCP             = unix.IPPROTO_TCP
	protoUDP             = unix.IPPROTO_UDP
	protoSCTP            = unix.IPPROTO_SCTP
)

// protoNames are nft's names of the transport protocols the rules use.
var protoNames = map[byte]string{protoTCP: "tcp", protoUDP: "udp", protoSCTP: "sctp"}

func fieldName(off uint8) string {
	if off == ipv4SaddrOffset {
		return "saddr"
	}
	return "daddr"
}

// rule builds a Rule statement by statement, its text as it goes.
type rule struct {
	text  []byte
	stmts []stmt
}

func newRule() *rule { return &rule{text: make([]byte, 0, 48), stmts: make([]stmt, 0, 2)} }

func (b *rule) word(s ...string) {
	if len(b.text) > 0 {
		b.text = append(b.text, ' ')
	}
	for _, w := range s {
		b.text = append(b.text, w...)
	}
}

func (b *rule) ipHead(field uint8, neq bool) {
	b.word("ip ", fieldName(field))
	if neq {
		b.text = append(b.text, " !="...)
	}
	b.text = append(b.text, ' ')
}

// ipPrefix matches ip saddr/daddr against a prefix (an address when it is
// a /32).
func (b *rule) ipPrefix(field uint8, neq bool, p netip.Prefix) *rule {
	b.ipHead(field, neq)
	p = p.Masked()
	if p.Bits() == 32 {
		b.text = p.Addr().AppendTo(b.text)
	} else {
		b.text = p.AppendTo(b.text)
	}
	b.stmts = append(b.stmts, stmt{kind: stIPPrefix, field: field, neq: neq, addr: p.Addr().As4(), bits: uint8(p.Bits())})
	return b
}

// ipSet matches ip saddr/daddr against a named set.
func (b *rule) ipSet(field uint8, neq bool, set string) *rule {
	b.ipHead(field, neq)
	b.text = append(append(b.text, '@'), set...)
	b.stmts = append(b.stmts, stmt{kind: stIPSet, field: field, neq: neq, name: set})
	return b
}

// ipVmap jumps by a named verdict map keyed by ip saddr/daddr.
func (b *rule) ipVmap(field uint8, m string) *rule {
	b.word("ip ", fieldName(field), " vmap @", m)
	b.stmts = append(b.stmts, stmt{kind: stIPVmap, field: field, name: m})
	return b
}

// ctStateEstRel matches ct state established,related.
func (b *rule) ctStateEstRel() *rule {
	b.word("ct state established,related")
	b.stmts = append(b.stmts, stmt{kind: stCtEstRel})
	return b
}

// l4proto matches meta l4proto.
func (b *rule) l4proto(p byte) *rule {
	b.word("meta l4proto ", protoNames[p])
	b.stmts = append(b.stmts, stmt{kind: stL4Proto, field: p})
	return b
}

// l4protoIn matches meta l4proto against an anonymous set. A rule has at
// most one anonymous set.
func (b *rule) l4protoIn(ps ...byte) *rule {
	b.word("meta l4proto {")
	for i, p := range ps {
		if i > 0 {
			b.text = append(b.text, ',')
		}
		b.text = append(append(b.text, ' '), protoNames[p]...)
	}
	b.text = append(b.text, " }"...)
	b.stmts = append(b.stmts, stmt{kind: stL4ProtoIn, protos: ps})
	return b
}

// dport matches the destination port of tcp or udp.
func (b *rule) dport(p byte, port uint16) *rule {
	b.word(protoNames[p], " dport ", strconv.Itoa(int(port)))
	b.stmts = append(b.stmts, stmt{kind: stDport, field: p, n: uint32(port)})
	return b
}

// oifname matches the output interface's name.
func (b *rule) oifname(neq bool, name string) *rule {
	b.word("oifname ")
	if neq {
		b.text = append(b.text, "!= "...)
	}
	b.text = strconv.AppendQuote(b.text, name)
	b.stmts = append(b.stmts, stmt{kind: stOifname, neq: neq, name: name})
	return b
}

func hex32(m uint32) string { return fmt.Sprintf("0x%08x", m) }

// markHas matches packets whose meta mark has every bit of m.
func (b *rule) markHas(m uint32) *rule {
	b.word("meta mark & ", hex32(m), " == ", hex32(m))
	b.stmts = append(b.stmts, stmt{kind: stMarkHas, n: m})
	return b
}

// markOr sets the bits of m in meta mark, keeping the others.
func (b *rule) markOr(m uint32) *rule {
	b.word("meta mark set meta mark | ", hex32(m))
	b.stmts = append(b.stmts, stmt{kind: stMarkOr, n: m})
	return b
}

// dnat rewrites the destination address, keeping the port.
func (b *rule) dnat(a netip.Addr) *rule {
	b.word("dnat ip to ")
	b.text = a.AppendTo(b.text)
	b.stmts = append(b.stmts, stmt{kind: stDNAT, addr: a.As4()})
	return b
}

// dnatPort rewrites the destination address and port. The rule must have
// matched the transport protocol (nft refuses a port without it).
func (b *rule) dnatPort(a netip.Addr, port uint16) *rule {
	b.word("dnat ip to ")
	b.text = a.AppendTo(b.text)
	b.text = strconv.AppendUint(append(b.text, ':'), uint64(port), 10)
	b.stmts = append(b.stmts, stmt{kind: stDNAT, addr: a.As4(), port: port})
	return b
}

// fibLocal matches packets to an address of the node: any local route,
// loopback included.
func (b *rule) fibLocal() *rule {
	b.word("fib daddr type local")
	b.stmts = append(b.stmts, stmt{kind: stFibLocal})
	return b
}

// portVmap jumps by a named verdict map keyed by the transport protocol
// and destination port, "inet_proto . inet_service".
func (b *rule) portVmap(m string) *rule {
	b.word("meta l4proto . th dport vmap @", m)
	b.stmts = append(b.stmts, stmt{kind: stPortVmap, name: m})
	return b
}

// ctDNAT matches connections whose destination was translated.
func (b *rule) ctDNAT() *rule {
	b.word("ct status dnat")
	b.stmts = append(b.stmts, stmt{kind: stCtDNAT})
	return b
}

// ctMarkHas matches connections whose conntrack mark has every bit of m.
func (b *rule) ctMarkHas(m uint32) *rule {
	b.word("ct mark & ", hex32(m), " == ", hex32(m))
	b.stmts = append(b.stmts, stmt{kind: stCtMarkHas, n: m})
	return b
}

// ctMarkOr sets the bits of m in the conntrack mark, keeping the others.
func (b *rule) ctMarkOr(m uint32) *rule {
	b.word("ct mark set ct mark | ", hex32(m))
	b.stmts = append(b.stmts, stmt{kind: stCtMarkOr, n: m})
	return b
}

func (b *rule) masquerade() *rule {
	b.word("masquerade")
	b.stmts = append(b.stmts, stmt{kind: stMasq})
	return b
}

// rejectTCP answers with a tcp reset; the rule must have matched tcp.
func (b *rule) rejectTCP() *rule {
	b.word("reject with tcp reset")
	b.stmts = append(b.stmts, stmt{kind: stRejectTCP})
	return b
}

// rejectICMPX answers with an icmp (or icmpv6) destination unreachable.
func (b *rule) rejectICMPX(code uint8) *rule {
	switch code {
	case icmpxPortUnreachable:
		b.word("reject") // nft's default, printed bare
	case icmpxAdminProhibited:
		b.word("reject with icmpx admin-prohibited")
	default:
		panic(fmt.Sprintf("nft: icmpx code %d", code))
	}
	b.stmts = append(b.stmts, stmt{kind: stRejectICMPX, n: uint32(code)})
	return b
}

func (b *rule) accept() *rule {
	b.word("accept")
	b.stmts = append(b.stmts, stmt{kind: stAccept})
	return b
}

func (b *rule) gotoChain(c string) *rule {
	b.word("goto ", c)
	b.stmts = append(b.stmts, stmt{kind: stGoto, name: c})
	return b
}

// numgenVmap goes to one of chains, picked at random (numgen random mod
// N), through an anonymous verdict map.
func (b *rule) numgenVmap(chains []string) *rule {
	n := 32
	for _, c := range chains {
		n += len(c) + 12
	}
	b.text = slices.Grow(b.text, n)
	b.word("numgen random mod ", strconv.Itoa(len(chains)), " vmap {")
	for i, c := range chains {
		if i > 0 {
			b.text = append(b.text, ',')
		}
		b.text = append(b.text, ' ')
		b.text = strconv.AppendInt(b.text, int64(i), 10)
		b.text = append(append(b.text, " : goto "...), c...)
	}
	b.text = append(b.text, " }"...)
	b.stmts = append(b.stmts, stmt{kind: stNumgenVmap, chains: chains})
	return b
}

// done returns the rule, which shares nothing with b: b may be reset and
// reused.
func (b *rule) done() Rule {
	return Rule{Text: string(b.text), stmts: slices.Clip(slices.Clone(b.stmts))}
}

// reset empties b for the next rule.
func (b *rule) reset() *rule {
	b.text, b.stmts = b.text[:0], b.stmts[:0]
	return b
}

// exprs returns the rule's expressions, and the anonymous set its lookup
// exprs[at] refers to, if any: the caller creates that set in the same
// batch and sets the lookup's set name and ID.
func (r *Rule) exprs() (out []expr.Any, anon *anonSet, at int) {
	nfproto := false
	ipv4 := func() { // the dependency of an ip header field, once
		if !nfproto {
			nfproto = true
			out = append(out, &expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.NFPROTO_IPV4}})
		}
	}
	op := func(neq bool) expr.CmpOp {
		if neq {
			return expr.CmpOpNeq
		}
		return expr.CmpOpEq
	}
	load := func(field uint8, n uint32) *expr.Payload {
		return &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: uint32(field), Len: n}
	}
	l4 := func(p byte) []expr.Any {
		return []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{p}}}
	}
	for _, s := range r.stmts {
		switch s.kind {
		case stIPPrefix:
			// As nft does: whole bytes compared directly, a partial
			// byte through a mask.
			ipv4()
			if s.bits%8 == 0 {
				n := uint32(s.bits / 8)
				out = append(out, load(s.field, n), &expr.Cmp{Op: op(s.neq), Register: reg1, Data: append([]byte(nil), s.addr[:n]...)})
			} else {
				out = append(out, load(s.field, 4),
					&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
						Mask: binaryutil.BigEndian.PutUint32(^uint32(0) << (32 - s.bits)), Xor: make([]byte, 4)},
					&expr.Cmp{Op: op(s.neq), Register: reg1, Data: append([]byte(nil), s.addr[:]...)})
			}
		case stIPSet:
			ipv4()
			out = append(out, load(s.field, 4), &expr.Lookup{SourceRegister: reg1, SetName: s.name, Invert: s.neq})
		case stIPVmap:
			ipv4()
			out = append(out, load(s.field, 4),
				&expr.Lookup{SourceRegister: reg1, DestRegister: regVerdict, IsDestRegSet: true, SetName: s.name})
		case stCtEstRel:
			out = append(out, &expr.Ct{Key: expr.CtKeySTATE, Register: reg1},
				&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
					Mask: binaryutil.NativeEndian.PutUint32(ctStateEstablished | ctStateRelated), Xor: make([]byte, 4)},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)})
		case stL4Proto:
			out = append(out, l4(s.field)...)
		case stL4ProtoIn:
			elems := make([]nftables.SetElement, len(s.protos))
			for i, p := range s.protos {
				elems[i] = nftables.SetElement{Key: []byte{p}}
			}
			out = append(out, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1})
			anon, at = &anonSet{keyType: nftables.TypeInetProto, elems: elems}, len(out)
			out = append(out, &expr.Lookup{SourceRegister: reg1})
		case stDport:
			out = append(out, l4(s.field)...)
			out = append(out, &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: transportDportOffset, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.BigEndian.PutUint16(uint16(s.n))})
		case stOifname:
			data := make([]byte, ifNameSize)
			copy(data, s.name)
			out = append(out, &expr.Meta{Key: expr.MetaKeyOIFNAME, Register: reg1},
				&expr.Cmp{Op: op(s.neq), Register: reg1, Data: data})
		case stMarkHas:
			out = append(out, &expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
				&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
					Mask: binaryutil.NativeEndian.PutUint32(s.n), Xor: make([]byte, 4)},
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(s.n)})
		case stMarkOr:
			out = append(out, &expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
				&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
					Mask: binaryutil.NativeEndian.PutUint32(^s.n), Xor: binaryutil.NativeEndian.PutUint32(s.n)},
				&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1})
		case stDNAT:
			out = append(out, &expr.Immediate{Register: reg1, Data: append([]byte(nil), s.addr[:]...)})
			if s.port == 0 {
				out = append(out, &expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg1})
				break
			}
			out = append(out, &expr.Immediate{Register: reg2, Data: binaryutil.BigEndian.PutUint16(s.port)},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg1, RegProtoMin: reg2, Specified: true})
		case stNFProto4:
			nfproto = true
			out = append(out, &expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.NFPROTO_IPV4}})
		case stFibLocal:
			out = append(out, &expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)})
		case stPortVmap:
			// A concatenation: each field in a 4-byte register of its
			// own, zero padded, the key their 8 bytes.
			out = append(out, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
				&expr.Payload{DestRegister: reg32Field, Base: expr.PayloadBaseTransportHeader, Offset: transportDportOffset, Len: 2},
				&expr.Lookup{SourceRegister: reg1, DestRegister: regVerdict, IsDestRegSet: true, SetName: s.name})
		case stCtDNAT:
			out = append(out, &expr.Ct{Key: expr.CtKeySTATUS, Register: reg1},
				&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
					Mask: binaryutil.NativeEndian.PutUint32(ctStatusDstNAT), Xor: make([]byte, 4)},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)})
		case stCtMarkHas:
			out = append(out, &expr.Ct{Key: expr.CtKeyMARK, Register: reg1},
				&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
					Mask: binaryutil.NativeEndian.PutUint32(s.n), Xor: make([]byte, 4)},
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(s.n)})
		case stCtMarkOr:
			out = append(out, &expr.Ct{Key: expr.CtKeyMARK, Register: reg1},
				&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
					Mask: binaryutil.NativeEndian.PutUint32(^s.n), Xor: binaryutil.NativeEndian.PutUint32(s.n)},
				&expr.Ct{Key: expr.CtKeyMARK, SourceRegister: true, Register: reg1})
		case stMasq:
			out = append(out, &expr.Masq{})
		case stRejectTCP:
			out = append(out, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST})
		case stRejectICMPX:
			out = append(out, &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: uint8(s.n)})
		case stAccept:
			out = append(out, &expr.Verdict{Kind: expr.VerdictAccept})
		case stGoto:
			out = append(out, &expr.Verdict{Kind: expr.VerdictGoto, Chain: s.name})
		case stNumgenVmap:
			// The number is turned to network byte order before the
			// lookup, and the map keyed so: the library marks every
			// anonymous set's keys big-endian, and nft would list
			// host-order keys byte swapped (1 as 16777216). nft prints
			// the conversion as nothing.
			elems := make([]nftables.SetElement, len(s.chains))
			for i, c := range s.chains {
				elems[i] = nftables.SetElement{Key: binaryutil.BigEndian.PutUint32(uint32(i)),
					VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: c}}
			}
			out = append(out, &expr.Numgen{Register: reg1, Modulus: uint32(len(s.chains)), Type: unix.NFT_NG_RANDOM},
				&expr.Byteorder{SourceRegister: reg1, DestRegister: reg1, Op: expr.ByteorderHton, Len: 4, Size: 4})
			anon, at = &anonSet{keyType: nftables.TypeInteger, isMap: true, elems: elems}, len(out)
			out = append(out, &expr.Lookup{SourceRegister: reg1, DestRegister: regVerdict, IsDestRegSet: true})
		default:
			panic(fmt.Sprintf("nft: statement kind %d", s.kind))
		}
	}
	return out, anon, at
}
