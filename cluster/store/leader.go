package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// LeaderInfo is who leads the cluster as this manager sees it.
type LeaderInfo struct {
	// IsLeader is true on the leader itself: start controllers then.
	IsLeader bool
	// ID and Addr name the leader; both are empty when none is known.
	ID   string
	Addr string
}

// Leader returns the current leadership as this manager sees it.
func (s *Store) Leader() LeaderInfo {
	n, err := s.get()
	if err != nil {
		return LeaderInfo{}
	}
	return leaderInfo(n, s.cfg.ID)
}

func leaderInfo(n *node, self string) LeaderInfo {
	addr, id := n.raft.LeaderWithID()
	return LeaderInfo{IsLeader: n.raft.State() == raft.Leader && string(id) == self, ID: string(id), Addr: string(addr)}
}

// IsLeader reports whether this manager leads.
func (s *Store) IsLeader() bool { return s.Leader().IsLeader }

// WatchLeader returns a channel that holds the latest LeaderInfo whenever
// it changes (older values are replaced, never queued), starting with the
// current one, and a function that ends the subscription. The channel is
// closed when the store closes.
func (s *Store) WatchLeader() (<-chan LeaderInfo, func()) {
	ch := make(chan LeaderInfo, 1)
	f := &s.leaders
	f.mu.Lock()
	if f.closed {
		close(ch)
		f.mu.Unlock()
		return ch, func() {}
	}
	f.subs[ch] = struct{}{}
	ch <- s.Leader()
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.subs[ch]; ok {
			delete(f.subs, ch)
			close(ch)
		}
	}
}

type leaderFanout struct {
	mu     sync.Mutex
	subs   map[chan LeaderInfo]struct{}
	last   LeaderInfo
	closed bool
}

func (f *leaderFanout) publish(li LeaderInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if li == f.last || f.closed {
		return
	}
	f.last = li
	for ch := range f.subs {
		select { // replace a value the subscriber has not read yet
		case <-ch:
		default:
		}
		ch <- li
	}
}

func (f *leaderFanout) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for ch := range f.subs {
		delete(f.subs, ch)
		close(ch)
	}
}

// leaderLoop turns Raft's leader and state observations into LeaderInfo
// updates. Raft drops observations when obs is full; each wake-up reads the
// current leadership, so a dropped one only delays nothing that matters.
func (s *Store) leaderLoop(n *node, obs chan raft.Observation) {
	tick := time.NewTicker(s.cfg.Raft.HeartbeatTimeout)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-obs:
		case <-tick.C:
		}
		li := leaderInfo(n, s.cfg.ID)
		s.cfg.Metrics.setLeader(li.IsLeader)
		s.leaders.mu.Lock()
		changed := li != s.leaders.last
		s.leaders.mu.Unlock()
		if changed {
			s.log.Info("leadership", "leader", li.ID, "self", li.IsLeader)
			s.leaders.publish(li)
		}
	}
}

// Member is one server of the Raft configuration.
type Member struct {
	ID    string
	Addr  string
	Voter bool // false for a learner (non-voter)
}

// Members returns the Raft configuration as this manager knows it.
func (s *Store) Members() ([]Member, error) {
	n, err := s.get()
	if err != nil {
		return nil, err
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("members: %w", err)
	}
	var out []Member
	for _, srv := range f.Configuration().Servers {
		out = append(out, Member{ID: string(srv.ID), Addr: string(srv.Address), Voter: srv.Suffrage == raft.Voter})
	}
	return out, nil
}

// AddVoter adds a manager as a voter, or promotes a learner. Leader only.
func (s *Store) AddVoter(ctx context.Context, id, addr string) error {
	return s.changeMembers(ctx, "add voter "+id, func(r *raft.Raft, t time.Duration) raft.IndexFuture {
		return r.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, t)
	})
}

// AddLearner adds a manager that replicates the log without voting. Leader only.
func (s *Store) AddLearner(ctx context.Context, id, addr string) error {
	return s.changeMembers(ctx, "add learner "+id, func(r *raft.Raft, t time.Duration) raft.IndexFuture {
		return r.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, t)
	})
}

// RemoveMember removes a voter or learner. Leader only.
func (s *Store) RemoveMember(ctx context.Context, id string) error {
	return s.changeMembers(ctx, "remove "+id, func(r *raft.Raft, t time.Duration) raft.IndexFuture {
		return r.RemoveServer(raft.ServerID(id), 0, t)
	})
}

func (s *Store) changeMembers(ctx context.Context, what string, change func(*raft.Raft, time.Duration) raft.IndexFuture) error {
	n, err := s.get()
	if err != nil {
		return err
	}
	if n.raft.State() != raft.Leader {
		return fmt.Errorf("%s: %w", what, s.notLeader(n))
	}
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := s.wait(ctx, change(n.raft, timeout)); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return fmt.Errorf("%s: %w", what, s.notLeader(n))
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
