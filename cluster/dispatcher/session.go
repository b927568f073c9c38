package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

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
	s := &session{id: id, addr: addr, cancel: cancel}
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
	d.live.beat(id.NodeID, d.cfg.Clock.Now())
	log.Info("worker session started", "addr", addr, "hostname", first.Hello.Description.Hostname)
	if err := stream.Send(&wire.ManagerMessage{Session: &wire.Session{NodeID: id.NodeID, HeartbeatPeriod: d.cfg.HeartbeatPeriod}}); err != nil {
		return d.endError(ctx, err)
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		cancel(d.receive(ctx, s, stream))
	}()
	err = d.sendAssignments(ctx, s, stream)
	cancel(err)
	wg.Wait()
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
		if err := m.Validate(); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		// Any message is a sign of life.
		if d.live.beat(s.id.NodeID, d.cfg.Clock.Now()) {
			if err := d.markReady(ctx, s.id, nil, s.addr); err != nil {
				d.live.forget(s.id.NodeID)
				d.log.Warn("mark node ready again", logKeyNode, s.id.NodeID, logKeyErr, err)
			}
		}
		if m.Status != nil {
			d.pending.add(s.id.NodeID, m.Status.Updates)
		}
	}
}

// sendAssignments sends the node's assignment set, then a new one each
// time it changes, until ctx ends.
func (d *Dispatcher) sendAssignments(ctx context.Context, s *session, stream wire.SessionStream) error {
	node := s.id.NodeID
	lastKey := "\x00" // never a real key: the first set is always sent
	for {
		var cur *assignment
		w, err := d.cfg.Store.ViewAndWatch(func(tx store.ReadTx) (err error) {
			cur, err = assignmentOf(tx, node)
			return err
		}, store.KindTask, store.KindSecret, store.KindConfig)
		if err != nil {
			return fmt.Errorf("watch assignments: %w", err)
		}
		err = d.followAssignments(ctx, w, node, cur, &lastKey, stream)
		w.Close()
		if !errors.Is(err, store.ErrWatchOverflow) && !errors.Is(err, store.ErrResync) {
			return err
		}
		// Fell behind or the state was restored: read it again.
	}
}

func (d *Dispatcher) followAssignments(ctx context.Context, w *store.Watcher, node string, cur *assignment, lastKey *string, stream wire.SessionStream) error {
	for {
		if cur.key != *lastKey {
			if err := stream.Send(&wire.ManagerMessage{Assignments: cur.set}); err != nil {
				return err
			}
			*lastKey = cur.key
		}
		dirty := false
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case ev, ok := <-w.Events():
			if !ok {
				return w.Err()
			}
			dirty = relevant(ev, node, cur.ids)
		}
	drain: // coalesce a burst of changes into one set
		for {
			select {
			case ev, ok := <-w.Events():
				if !ok {
					return w.Err()
				}
				dirty = dirty || relevant(ev, node, cur.ids)
			default:
				break drain
			}
		}
		if !dirty {
			continue
		}
		err := d.cfg.Store.View(func(tx store.ReadTx) (err error) {
			next, err := assignmentOf(tx, node)
			if err == nil {
				cur = next
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("read assignments: %w", err)
		}
	}
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
	if len(info.State.VerifiedChains) == 0 {
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
