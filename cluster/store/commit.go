package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Group commit: the leader commits the transactions of concurrent
// proposers (its own Update calls and the followers' forwarded ones)
// together, as one Raft entry (a cmdGroup), instead of one entry each. An
// entry costs every manager the same whatever it holds (a Raft log and
// future, a msgpack encoding into the bolt log and onto the wire, a bolt
// write, a response), so a group of n small transactions costs about what
// one transaction of their size does.
//
// The committer keeps at most groupInflight entries in flight (proposed,
// not yet applied on the leader). A proposal that finds a free slot is
// proposed at once, alone, so a write on an idle store waits for nothing
// more than its own commit; while every slot is busy, proposals queue and
// the next free slot takes all of them (up to Config.MaxEntryBytes) as one
// group. The busier the store, the larger the groups.
//
// Each member of a group keeps its own semantics: it is checked against
// the state the members before it left and applied atomically on its own
// (applyGroup), so a stale member fails with ErrVersionConflict while the
// others commit, and each proposer gets its own error. All members of a
// group share the group's Raft index as their commit index and Version.

// groupInflight bounds the group entries in flight. One serialises
// proposing with committing (the leader sits idle while a group travels;
// 16 concurrent writers came out lowest with it in 2 of 3 rounds); from
// two on, groups form while earlier ones are written, replicated and
// applied. 2, 4 and 8 measured the same within this machine's noise
// (BENCHMARKS.md): 4 leaves a stage of Raft's pipeline (leader's log,
// followers' logs, apply) per group and one forming.
const groupInflight = 4

// groupMaxMembers bounds the transactions in one group.
const groupMaxMembers = 1024

// proposal states: a proposal is taken by the committer or abandoned by
// its proposer, whichever comes first.
const (
	proposalQueued uint32 = iota
	proposalTaken
	proposalAbandoned
)

// proposal is one transaction waiting to be committed.
type proposal struct {
	cmd   []byte // an encoded cmdTxn of at most Config.MaxEntryBytes
	state atomic.Uint32
	done  chan struct{} // closed when index and err are set
	index uint64
	err   error
}

// committer groups the proposals of one Raft node. Its loop runs in the
// store's wait group; the goroutine that waits for each group's future
// ends when the future resolves.
type committer struct {
	s        *Store
	n        *node
	maxBytes int

	mu    sync.Mutex
	queue []*proposal
	wake  chan struct{} // one pending wake-up of the loop
	slots chan struct{} // a token per group in flight
}

func newCommitter(s *Store, n *node) *committer {
	return &committer{s: s, n: n, maxBytes: s.cfg.MaxEntryBytes,
		wake: make(chan struct{}, 1), slots: make(chan struct{}, groupInflight)}
}

// submit commits cmd (at most maxBytes) as part of a group and returns its
// commit index. If ctx ends or the store closes before the committer took
// the proposal, it was never proposed and the error says only why;
// afterwards its outcome is unknown (ErrUncertain).
func (c *committer) submit(ctx context.Context, cmd []byte) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	p := &proposal{cmd: cmd, done: make(chan struct{})}
	c.mu.Lock()
	c.queue = append(c.queue, p)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
	var cause error
	select {
	case <-p.done:
		return p.index, p.err
	case <-ctx.Done():
		cause = ctx.Err()
	case <-c.s.done:
		cause = ErrClosed
	}
	if p.state.CompareAndSwap(proposalQueued, proposalAbandoned) {
		return 0, cause
	}
	return 0, fmt.Errorf("%w: %w: %w", ErrUncertain, errWaitEnded, cause)
}

// run proposes groups until the store closes.
func (c *committer) run() {
	for {
		select {
		case <-c.wake:
		case <-c.s.done:
			return
		}
		for {
			// Wait for a slot before taking proposals: meanwhile more queue
			// up and join this group.
			select {
			case c.slots <- struct{}{}:
			case <-c.s.done:
				return
			}
			group := c.take()
			if len(group) == 0 {
				<-c.slots
				break
			}
			c.propose(group)
		}
	}
}

// take removes the next group from the queue: proposals in order, skipping
// abandoned ones, while the group entry stays within maxBytes.
func (c *committer) take() []*proposal {
	c.mu.Lock()
	defer c.mu.Unlock()
	var group []*proposal
	size, i := groupHeader, 0
	for ; i < len(c.queue) && len(group) < groupMaxMembers; i++ {
		p := c.queue[i]
		n := groupOverhead(len(p.cmd)) + len(p.cmd)
		if len(group) > 0 && size+n > c.maxBytes {
			break
		}
		if !p.state.CompareAndSwap(proposalQueued, proposalTaken) {
			continue // its proposer gave up
		}
		group = append(group, p)
		size += n
	}
	rest := copy(c.queue, c.queue[i:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	return group
}

// propose proposes a group as one entry (a lone proposal as its own
// cmdTxn) and waits for it in a goroutine that then frees the slot.
func (c *committer) propose(group []*proposal) {
	var data []byte
	if len(group) == 1 {
		data = group[0].cmd
	} else {
		cmds := make([][]byte, len(group))
		for i, p := range group {
			cmds[i] = p.cmd
		}
		data = encodeGroup(cmds)
	}
	start := time.Now()
	f := c.n.raft.Apply(data, c.s.cfg.ApplyTimeout)
	go func() {
		// With BatchApplyCh a future queued when Raft shuts down never
		// resolves: this goroutine then stays, and the proposers stop
		// waiting at Close.
		err := f.Error()
		if err == nil {
			c.s.cfg.Metrics.commit.Observe(time.Since(start).Seconds())
		}
		<-c.slots
		c.finish(group, f, err)
	}()
}

// finish hands each proposer of a resolved group its own result.
func (c *committer) finish(group []*proposal, f raft.ApplyFuture, err error) {
	var res *applyResult
	if err == nil {
		res, _ = f.Response().(*applyResult)
	}
	for i, p := range group {
		switch {
		case err != nil:
			p.err = c.s.futureErr(c.n, err, true)
		case res == nil:
			p.err = fmt.Errorf("%w: no apply result", ErrInvalid) // cannot happen: the FSM always answers
		case len(group) == 1:
			p.err = res.err
		case res.err != nil:
			p.err = res.err
		case i < len(res.errs):
			p.err = res.errs[i]
		default:
			p.err = fmt.Errorf("%w: group result has %d members, want %d", ErrInvalid, len(res.errs), len(group))
		}
		if p.err == nil {
			p.index = f.Index()
		}
		close(p.done)
	}
}
