package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Settling a write whose outcome is unknown.
//
// A write forwarded to a leader that is cut off (its packets dropped, not
// refused) used to wait on the established connection until ApplyTimeout
// and fail as ErrUncertain, although Raft had named a new leader long
// before. Now the forward is cancelled as soon as this manager's Raft
// names another leader, and the write's fate is settled instead of
// guessed: a barrier through the current leader commits an entry of a
// term later than the one the write was sent in (or orders it after the
// write, if it was the same leader), so once this manager has applied up
// to the barrier, a copy that was going to commit has been applied here,
// and one that was not can never commit (Raft drops the uncommitted
// entries of a former term). The FSM tells the proposer whether it
// applied the exact bytes of its command (cmdWatch), and with what result;
// if it did not, sending the command again is safe.
//
// A copy delayed somewhere that still arrives at a leader later is a
// duplicate of a command that applied (or was settled as lost and sent
// again). The store's commands are one-shot by construction: an update
// names the version it read, a create an ID that is new, so a duplicate
// is rejected by every FSM alike (ErrVersionConflict, ErrExists) and
// changes nothing. The proposer takes the result of the first copy
// applied.

// cmdWatch waits for the FSM to apply a command's exact bytes.
type cmdWatch struct {
	sum  [sha256.Size]byte
	done chan struct{} // closed once applied

	// set before done is closed
	index uint64
	err   error
}

// applied reports whether the command has applied, its index and the
// FSM's verdict (nil, or why it was rejected).
func (w *cmdWatch) applied() (bool, uint64, error) {
	select {
	case <-w.done:
		return true, w.index, w.err
	default:
		return false, 0, nil
	}
}

// cmdWatches are the commands this manager's proposers wait on. Raft's FSM
// goroutine hashes what it applies only while there are any.
type cmdWatches struct {
	n  atomic.Int32
	mu sync.Mutex
	m  map[[sha256.Size]byte][]*cmdWatch
}

func (ws *cmdWatches) add(cmd []byte) *cmdWatch {
	w := &cmdWatch{sum: sha256.Sum256(cmd), done: make(chan struct{})}
	ws.mu.Lock()
	if ws.m == nil {
		ws.m = map[[sha256.Size]byte][]*cmdWatch{}
	}
	ws.m[w.sum] = append(ws.m[w.sum], w)
	ws.mu.Unlock()
	ws.n.Add(1)
	return w
}

func (ws *cmdWatches) remove(w *cmdWatch) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	list := ws.m[w.sum]
	for i, x := range list {
		if x == w {
			list = append(list[:i], list[i+1:]...)
			ws.n.Add(-1)
			break
		}
	}
	if len(list) == 0 {
		delete(ws.m, w.sum)
	} else {
		ws.m[w.sum] = list
	}
}

// appliedCmd is a command the FSM applied in the current batch, noted for
// the watches.
type appliedCmd struct {
	data  []byte
	index uint64
	err   error
}

// fire resolves the watches of the commands just applied (the batch has
// committed: the local state holds them). The first copy applied decides.
func (ws *cmdWatches) fire(cmds []appliedCmd) {
	if len(cmds) == 0 {
		return
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, c := range cmds {
		for _, w := range ws.m[sha256.Sum256(c.data)] {
			if ok, _, _ := w.applied(); !ok {
				w.index, w.err = c.index, c.err
				close(w.done)
			}
		}
	}
}

// errLeaderChanged: a call to the leader was cancelled because Raft named
// another leader while it was in flight.
var errLeaderChanged = errors.New("the leader changed while the call was in flight")

// untilLeaderChanges returns a context for a call to the leader at addr
// that ends once this manager's Raft names a different leader (not while
// it names none: the old leader may still answer), and a stop function
// that reports whether that is why it ended.
func (s *Store) untilLeaderChanges(ctx context.Context, n *node, addr string) (context.Context, func() bool) {
	cctx, cancel := context.WithCancelCause(ctx)
	ch, stopWatch := s.WatchLeader()
	done := make(chan struct{})
	var changed atomic.Bool
	go func() {
		defer stopWatch()
		t := time.NewTicker(max(s.cfg.Raft.HeartbeatTimeout/4, time.Millisecond)) // belt and braces: observations may be dropped
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-cctx.Done():
				return
			case <-ch:
			case <-t.C:
			}
			if a, _ := n.raft.LeaderWithID(); a != "" && string(a) != addr {
				changed.Store(true)
				cancel(errLeaderChanged)
				return
			}
		}
	}()
	return cctx, func() bool {
		close(done)
		cancel(nil)
		return changed.Load()
	}
}

// proposeSettled proposes cmd (propose), and when the outcome is unknown,
// settles it: a barrier through the current leader, then the FSM's word
// on whether cmd applied. A command that did not apply, and now cannot, is
// proposed again, within ctx and ApplyTimeout. Commands too large for one
// entry (chunked) are not settled: their ErrUncertain stands.
func (s *Store) proposeSettled(ctx context.Context, n *node, cmd []byte) (uint64, error) {
	if len(cmd) > s.cfg.MaxEntryBytes {
		return s.propose(ctx, n, cmd)
	}
	w := s.fsm.watches.add(cmd)
	defer s.fsm.watches.remove(w)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		idx, err := s.propose(ctx, n, cmd)
		if ok, widx, werr := w.applied(); ok {
			// A copy applied (this one, or an earlier one whose answer was lost).
			return widx, werr
		}
		if err == nil || !errors.Is(err, ErrUncertain) || ctx.Err() != nil {
			return idx, err
		}
		if berr := s.Barrier(ctx); berr != nil {
			return 0, fmt.Errorf("%w (settling it: %v)", err, berr)
		}
		if ok, widx, werr := w.applied(); ok {
			s.log.Debug("write's outcome settled: it applied", logKeyIndex, widx, "attempt", attempt)
			return widx, werr
		}
		s.log.Debug("write's outcome settled: it did not apply and cannot now; sending it again", "attempt", attempt, logKeyErr, err)
	}
}
