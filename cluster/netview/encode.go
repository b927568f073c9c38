package netview

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/gitorc/gitorc/cluster/api"
)

// pieces are the JSON encodings of an index's shared parts, each made
// once, when a view first needs it, and then copied into every view that
// holds it. A view of a large cluster is megabytes (every peer, and every
// member and backend of the networks its tasks are on) and nearly the
// same for every node: encoding each view whole cost the leader ~4 ms a
// view at 1,000 nodes and 10,000 tasks, once per node and change.
type pieces struct {
	peers    atomic.Pointer[peerPieces]
	networks []atomic.Pointer[[]byte] // by position in Index.networks
	services []atomic.Pointer[[]byte] // by position in Index.services
}

// peerPieces is every peer's encoding, one after the other, comma
// separated, with where each starts: all but one peer are two copies.
type peerPieces struct {
	all   []byte
	start []int // start[i]: where peer i's encoding begins in all; start[len] = len(all)+1
}

// ViewJSON is the JSON encoding of View(nodeID), the bytes json.Marshal
// makes of it, built from encodings of the peers, networks and services
// that the index makes once and every node's view shares. Safe for
// concurrent use.
func (ix *Index) ViewJSON(nodeID string) ([]byte, error) { return ix.AppendViewJSON(nil, nodeID) }

// AppendViewJSON appends ViewJSON(nodeID) to dst, growing it once, with a
// few bytes to spare for what the caller closes it with (a message
// around the view).
func (ix *Index) AppendViewJSON(dst []byte, nodeID string) ([]byte, error) {
	tasks, nets, svcs := ix.parts(nodeID)
	head, err := json.Marshal(&api.NetView{NodeID: nodeID, Subnet: ix.subnets[nodeID], TaskPool: ix.taskPool, VIPPool: ix.vipPool})
	if err != nil {
		return nil, fmt.Errorf("network view of node %s: %w", nodeID, err)
	}
	// The view's parts in order, then copied once into dst grown to their
	// total size (a view is megabytes: growing it by appends copied it
	// four times over).
	parts := [][]byte{head[:len(head)-1]} // without its closing brace
	i, self := ix.peerPosition(nodeID)
	if n := len(ix.peers); n > 1 || n == 1 && !self {
		pp, err := ix.peerPieces()
		if err != nil {
			return nil, err
		}
		parts = append(parts, []byte(`,"peers":[`))
		switch {
		case !self:
			parts = append(parts, pp.all)
		case i == 0:
			parts = append(parts, pp.all[pp.start[1]:])
		default:
			parts = append(parts, pp.all[:pp.start[i]-1]) // without the comma after peer i-1
			if i+1 < n {
				parts = append(parts, pp.all[pp.start[i+1]-1:]) // from that comma on
			}
		}
		parts = append(parts, []byte{']'})
	}
	list := func(key string, cache []atomic.Pointer[[]byte], at []int, enc func(int) any) error {
		if len(at) == 0 {
			return nil
		}
		parts = append(parts, []byte(`,"`+key+`":[`))
		for k, p := range at {
			b, err := piece(cache, p, enc)
			if err != nil {
				return fmt.Errorf("network view of node %s: %w", nodeID, err)
			}
			if k > 0 {
				parts = append(parts, []byte{','})
			}
			parts = append(parts, b)
		}
		parts = append(parts, []byte{']'})
		return nil
	}
	if err := list("networks", ix.enc.networks, nets, func(p int) any { return &ix.networks[p] }); err != nil {
		return nil, err
	}
	if err := list("services", ix.enc.services, svcs, func(s int) any { return &ix.services[s] }); err != nil {
		return nil, err
	}
	if len(tasks) > 0 {
		b, err := json.Marshal(tasks)
		if err != nil {
			return nil, fmt.Errorf("network view of node %s: %w", nodeID, err)
		}
		parts = append(parts, []byte(`,"tasks":`), b)
	}
	parts = append(parts, []byte{'}'})
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	dst = slices.Grow(dst, n+spare)
	for _, p := range parts {
		dst = append(dst, p...)
	}
	return dst, nil
}

// spare is the room AppendViewJSON leaves after the view.
const spare = 8

// piece is the encoding of enc(i), kept at cache[i] once made.
func piece(cache []atomic.Pointer[[]byte], i int, enc func(int) any) ([]byte, error) {
	if b := cache[i].Load(); b != nil {
		return *b, nil
	}
	b, err := json.Marshal(enc(i))
	if err != nil {
		return nil, err
	}
	cache[i].Store(&b) // a racing encoder stores the same bytes
	return b, nil
}

// peerPieces encodes every peer, once.
func (ix *Index) peerPieces() (*peerPieces, error) {
	if pp := ix.enc.peers.Load(); pp != nil {
		return pp, nil
	}
	pp := &peerPieces{start: make([]int, 0, len(ix.peers)+1)}
	for i := range ix.peers {
		if i > 0 {
			pp.all = append(pp.all, ',')
		}
		pp.start = append(pp.start, len(pp.all))
		b, err := json.Marshal(&ix.peers[i])
		if err != nil {
			return nil, err
		}
		pp.all = append(pp.all, b...)
	}
	pp.start = append(pp.start, len(pp.all)+1)
	ix.enc.peers.Store(pp)
	return pp, nil
}
