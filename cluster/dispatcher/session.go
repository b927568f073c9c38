package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/gitorc/gitorc/cluster/store"
)

// session is one worker's stream on the leader.
type session struct {
	id     ca.Identity
	addr   string
	cancel context.CancelCauseFunc

	// sendMu serialises sends on the stream: the session's updates and
	// the log requests of other goroutines.
	sendMu sync.Mutex
	stream wire.SessionStream
	closed bool // the handler returns: no more sends
	logs   logReqs

	// deltas: the worker applies incremental assignment sets.
	deltas bool
	// hasView: the worker holds a view from an earlier session; its
	// first view is paced.
	hasView bool
	// wake is signalled when the fan-out marks the session; marked and
	// services are guarded by the fan-out's mutex.
	wake     chan struct{}
	marked   marks
	services map[string]bool
	networks map[string]bool
	// assignAt and viewAt are the store indexes the session last read
	// its assignment set and view at (the fan-out's mutex).
	assignAt, viewAt uint64
}

// send sends m on the session's stream.
func (s *session) send(m *wire.ManagerMessage) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if s.closed {
		return ErrSessionEnded
	}
	return s.stream.Send(m)
}

// close ends the session's log requests and its sends.
func (s *session) close(cause error) {
	if cause == nil {
		cause = context.Canceled
	}
	s.logs.end(fmt.Errorf("%w: %v", ErrSessionEnded, cause))
	s.sendMu.Lock()
	s.closed = true
	s.sendMu.Unlock()
}

// Session serves one worker's stream (wire.Server).
func (d *Dispatcher) Session(stream wire.SessionStream) error {
	id, addr, err := peerOf(stream.Context())
	if err != nil {
		return status.Error(codes.Unauthenticated, err.Error())
	}
	log := d.log.With(logKeyNode, id.NodeID)
	if li := d.cfg.Leadership.Leader(); !li.IsLeader {
		return wire.NotLeader(d.cfg.LeaderAddr(li))
	}

	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	s := &session{id: id, addr: addr, cancel: cancel, stream: stream, wake: make(chan struct{}, 1)}
	defer func() { s.close(context.Cause(ctx)) }()
	stop, err := d.addSession(s)
	if err != nil {
		return err
	}
	defer d.removeSession(s, stop)

	first, err := stream.Recv()
	if err != nil {
		return d.endError(ctx, err)
	}
	if first.Hello == nil {
		return status.Error(codes.InvalidArgument, ErrNoHello.Error())
	}
	// The hello is a sign of life of a node the leader holds as ready,
	// before its ready write, which waits its turn behind the other
	// nodes' after an election.
	d.live.touch(id.NodeID, d.cfg.Clock.Now())
	if err := d.markReady(ctx, id, &first.Hello.Description, addr); err != nil {
		if errors.Is(err, store.ErrNotLeader) || errors.Is(err, store.ErrNoLeader) {
			return wire.NotLeader(d.cfg.LeaderAddr(d.cfg.Leadership.Leader()))
		}
		if errors.Is(err, ErrNodeRemoved) {
			log.Warn("refused a removed node", "addr", addr)
			return status.Error(codes.PermissionDenied, err.Error())
		}
		log.Warn("register node", logKeyErr, err)
		return status.Error(codes.Unavailable, err.Error())
	}
	s.deltas = first.Hello.Deltas
	s.hasView = first.Hello.HasView
	d.live.beat(id.NodeID, d.cfg.Clock.Now())
	log.Info("worker session started", "addr", addr, "hostname", first.Hello.Description.Hostname)
	if err := s.send(&wire.ManagerMessage{Session: &wire.Session{NodeID: id.NodeID, HeartbeatPeriod: d.cfg.HeartbeatPeriod}}); err != nil {
		return d.endError(ctx, err)
	}
	s.logs.setReady()

	// The receiver is not waited for here: its Recv returns only when a
	// message comes or the stream ends, and the stream ends when this
	// handler returns. Waiting for it kept a session that ended (the
	// leader stepped down) alive until the worker's next message, which
	// the receiver then served. Run waits for it (sessWG; this session's
	// own count is held, so the Add is safe).
	d.sessWG.Add(1)
	go func() {
		defer d.sessWG.Done()
		cancel(d.receive(ctx, s, stream))
	}()
	err = d.sendUpdates(ctx, s, stream)
	cancel(err)
	log.Info("worker session ended", logKeyErr, context.Cause(ctx))
	return d.endError(ctx, context.Cause(ctx))
}

// endError turns why a session ended into what the worker is told.
func (d *Dispatcher) endError(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		err = c
	}
	var nl errNotLeader
	switch {
	case errors.As(err, &nl):
		return wire.NotLeader(nl.addr)
	case errors.Is(err, ErrNotRunning), errors.Is(err, ErrReplaced):
		return status.Error(codes.Unavailable, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Unavailable, err.Error())
}

// addSession registers s, ending an older session of the same node; the
// returned function detaches s from Run's life.
func (d *Dispatcher) addSession(s *session) (stop func() bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.runCtx == nil {
		return nil, status.Error(codes.Unavailable, ErrNotRunning.Error())
	}
	if old := d.sessions[s.id.NodeID]; old != nil {
		old.cancel(ErrReplaced)
	}
	d.sessions[s.id.NodeID] = s
	d.sessWG.Add(1)
	// End the session when Run ends.
	return context.AfterFunc(d.runCtx, func() { s.cancel(ErrNotRunning) }), nil
}

func (d *Dispatcher) removeSession(s *session, stop func() bool) {
	stop()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sessions[s.id.NodeID] == s {
		delete(d.sessions, s.id.NodeID)
	}
	d.sessWG.Done()
}

// receive handles heartbeats and status batches until the stream ends.
func (d *Dispatcher) receive(ctx context.Context, s *session, stream wire.SessionStream) error {
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return context.Cause(ctx) // ended meanwhile: serve nothing more
		}
		if err := m.Validate(); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		// Any message is a sign of life.
		now := d.cfg.Clock.Now()
		if d.live.beat(s.id.NodeID, now) {
			if err := d.markReady(ctx, s.id, nil, s.addr); err != nil {
				d.live.forget(s.id.NodeID)
				d.log.Warn("mark node ready again", logKeyNode, s.id.NodeID, logKeyErr, err)
			}
		}
		switch {
		case m.Heartbeat != nil:
			d.cfg.Metrics.observeHeartbeat(d.live.heartbeat(s.id.NodeID, now), now)
		case m.Status != nil:
			if n := d.pending.add(s.id.NodeID, m.Status.Updates); n > 0 {
				// A dropped report would leave the store behind the node
				// until its task changes again: the session ends, and the
				// next one reports every task of the node (session.Client).
				d.cfg.Metrics.observeDropped(n)
				d.log.Warn("task statuses dropped: the node's queue is full; ending its session for a full report", logKeyNode, s.id.NodeID, logKeyN, n)
				return fmt.Errorf("%w (%d of node %s)", ErrStatusesDropped, n, s.id.NodeID)
			}
		case m.LogsChunk != nil:
			s.onChunk(m.LogsChunk)
		case m.LogsEnd != nil:
			s.onEnd(m.LogsEnd)
		}
	}
}

// watched are the kinds the fan-out follows: those of assignment sets
// and those of network views.
var watched = []store.Kind{store.KindTask, store.KindSecret, store.KindConfig,
	store.KindNode, store.KindNetwork, store.KindService, store.KindCluster}

// desired is what a session read of the node's desired state, from one
// store state.
type desired struct {
	assign *assignment
	net    *netState
}

// sendUpdates sends the node's network view and assignment set, then,
// whenever the fan-out marks the session, what changed of them, until ctx
// ends.
func (d *Dispatcher) sendUpdates(ctx context.Context, s *session, stream wire.SessionStream) error {
	node := s.id.NodeID
	// Routed from before the first read: a change committed after it
	// marks the session again.
	d.fan.add(s)
	defer d.fan.remove(s)
	var (
		cur      desired
		lastView *api.NetView // nil: the first view is always sent
		sent     *sentSet     // nil: the first set is complete
		viewAt   time.Time    // when the last view was sent
		held     bool         // a view change waits for its pace (viewpace.go)
		paceC    <-chan time.Time
		pace     Timer
	)
	defer func() {
		if pace != nil {
			pace.Stop()
		}
	}()
	m := marks{assign: true, view: true}
	if s.hasView {
		// A reconnect keeps the view it has until its first one here,
		// paced as if a view had been sent at a random time within the
		// last interval: the fleet that reconnects after an election
		// gets its views spread over the interval, not all at once.
		viewAt = d.cfg.Clock.Now().Add(-time.Duration(rand.Int64N(int64(d.pace.interval(d.fan.sessions())) + 1)))
	}
	for {
		if m.removed {
			// Removed (gitorc node rm --force) while connected: the
			// session ends now, as a new one would be refused.
			d.log.Warn("node removed: ending its session", logKeyNode, node)
			return status.Error(codes.PermissionDenied, ErrNodeRemoved.Error())
		}
		// Paced views: a change waits until the interval since the last
		// view passed. The first view is held only for a worker that has
		// one from an earlier session (Hello.HasView); an assignment set is
		// not held for a view (the node attaches a task by its address,
		// the view brings routes and names a little later).
		hold := func() bool { // whether a view now would come before its pace
			if lastView == nil && !s.hasView {
				return false
			}
			wait := d.pace.interval(d.fan.sessions()) - d.cfg.Clock.Now().Sub(viewAt)
			if wait <= 0 {
				return false
			}
			held = true
			if pace == nil {
				pace = d.cfg.Clock.NewTimer(wait)
				paceC = pace.C()
			}
			return true
		}
		if m.view && hold() {
			m.view = false
		}
		if m.assign || m.view {
			var at uint64
			if err := d.cfg.Store.View(func(tx store.ReadTx) (err error) {
				at, err = d.read(tx, node, &cur, m.assign, m.view)
				if err == nil && !m.view && sent != nil && cur.assign.newAddrs(sent) && !held && !hold() {
					// A task's address the view may not hold yet (the
					// fan-out runs behind the store): the view first,
					// from the same state.
					m.view = true
					at, err = d.read(tx, node, &cur, true, true)
				}
				return err
			}); err != nil {
				return fmt.Errorf("read assignments and network view: %w", err)
			}
			d.fan.readAt(s, at, m.assign, m.view)
		}
		if m.view {
			d.fan.setView(s, cur.net)
			held = false
		}
		// The view before the assignment set: a task must be known to
		// the node's network plane before it starts.
		if cur.net != nil && !cur.net.view.Equal(lastView) {
			start := time.Now() // the cost of a view to the leader, not a wait: the wall clock
			msg, err := wire.NetworkMessage(cur.net.view, cur.net.appendJSON)
			if err != nil {
				return fmt.Errorf("network view of node %s: %w", node, err)
			}
			if err := s.send(msg); err != nil {
				return err
			}
			d.pace.observe(time.Since(start))
			lastView, viewAt = cur.net.view, d.cfg.Clock.Now()
		}
		if m.assign {
			var set *wire.AssignmentSet
			switch {
			case sent == nil:
				set = cur.assign.full()
			case s.deltas:
				set = cur.assign.delta(sent)
			case cur.assign.delta(sent) != nil:
				set = cur.assign.full() // a worker that takes no deltas
			}
			if set != nil {
				var seq uint64 = 1
				if sent != nil {
					seq = sent.seq + 1
				}
				set.Seq = seq
				if err := s.send(&wire.ManagerMessage{Assignments: set}); err != nil {
					return err
				}
				sent = cur.assign.record(seq)
			}
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-s.wake:
			m = d.fan.take(s)
		case <-paceC:
			pace, paceC = nil, nil
			m = d.fan.take(s)
			m.view = m.view || held
		}
	}
}

// read reads the parts of the node's desired state asked for, from tx or,
// when the view is asked for, from the state at least as new as tx's that
// the sessions share (netIndexes.latest): both parts from one state.
// It returns the index of the state read.
func (d *Dispatcher) read(tx store.ReadTx, node string, cur *desired, assign, view bool) (uint64, error) {
	if view {
		newer, ix, err := d.netIndexes.latest(d.cfg.Store, tx)
		if err != nil {
			return 0, fmt.Errorf("network view of node %s: %w", node, err)
		}
		tx = newer
		cur.net = newNetState(ix.View(node))
		cur.net.appendJSON = func(dst []byte) ([]byte, error) { return ix.AppendViewJSON(dst, node) }
	}
	if assign {
		a, err := assignmentOf(tx, node)
		if err != nil {
			return 0, err
		}
		cur.assign = a
	}
	return tx.Index(), nil
}

// peerOf reads the verified identity of the stream's peer from its TLS
// certificate, and its network address.
func peerOf(ctx context.Context) (ca.Identity, string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ca.Identity{}, "", errors.New("no peer information")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return ca.Identity{}, "", errors.New("connection is not TLS")
	}
	if len(info.State.PeerCertificates) == 0 {
		// The handshake verified any certificate shown (ca.TLSConfig).
		return ca.Identity{}, "", errors.New("no verified client certificate")
	}
	id, err := ca.RequireRole(info.State, api.RoleWorker, api.RoleManager)
	if err != nil {
		return ca.Identity{}, "", err
	}
	addr := ""
	if p.Addr != nil {
		addr = p.Addr.String()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			addr = host
		}
	}
	return id, addr, nil
}
