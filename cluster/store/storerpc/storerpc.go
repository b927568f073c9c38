package storerpc

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/gitorc/gitorc/cluster/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
)

// Service and method names.
const (
	ServiceName   = "gitorc.store.v1.Forward"
	applyMethod   = "/" + ServiceName + "/Apply"
	barrierMethod = "/" + ServiceName + "/Barrier"
	codecName     = "gitorc-store-json"
)

type codec struct{}

func (codec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (codec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (codec) Name() string                       { return codecName }

func init() { encoding.RegisterCodec(codec{}) }

// ApplyRequest is an encoded transaction (Store.Update's command).
type ApplyRequest struct {
	Cmd []byte `json:"cmd"`
}

// Reply is the leader's answer: the Raft index, or the store error by name.
type Reply struct {
	Index uint64 `json:"index,omitempty"`
	// Err is the error's text; Kind names the store sentinel it wraps.
	Err  string `json:"err,omitempty"`
	Kind string `json:"kind,omitempty"`
	// Leader is the Raft address of the leader a not-leader answer names.
	Leader string `json:"leader,omitempty"`
}

// sentinels are the store errors that cross the wire, by name.
var sentinels = map[string]error{
	"not_found": store.ErrNotFound, "exists": store.ErrExists, "name_conflict": store.ErrNameConflict,
	"version_conflict": store.ErrVersionConflict, "invalid": store.ErrInvalid, "no_leader": store.ErrNoLeader,
	"uncertain": store.ErrUncertain, "locked": store.ErrLocked, "closed": store.ErrClosed,
}

// Leader is the leader's side: the store, as far as forwarding needs it.
type Leader interface {
	ApplyCommand(ctx context.Context, cmd []byte) (uint64, error)
	LeaderBarrier(ctx context.Context) (uint64, error)
}

// Register serves forwarded writes on r. authorize vets each caller (nil
// lets everyone in: tests only).
func Register(r grpc.ServiceRegistrar, l Leader, authorize func(context.Context) error) {
	srv := &server{l: l, authorize: authorize}
	r.RegisterService(&grpc.ServiceDesc{
		ServiceName: ServiceName,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Apply",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				req := new(ApplyRequest)
				if err := dec(req); err != nil {
					return nil, err
				}
				return srv.apply(ctx, req)
			},
		}, {
			MethodName: "Barrier",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				if err := dec(new(struct{})); err != nil {
					return nil, err
				}
				return srv.barrier(ctx)
			},
		}},
		Metadata: "cluster/store/storerpc/storerpc.go",
	}, srv)
}

type server struct {
	l         Leader
	authorize func(context.Context) error
}

func (s *server) check(ctx context.Context) error {
	if s.authorize == nil {
		return nil
	}
	if err := s.authorize(ctx); err != nil {
		return status.Error(codes.PermissionDenied, err.Error())
	}
	return nil
}

func (s *server) apply(ctx context.Context, req *ApplyRequest) (*Reply, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	idx, err := s.l.ApplyCommand(ctx, req.Cmd)
	return reply(idx, err), nil
}

func (s *server) barrier(ctx context.Context) (*Reply, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	idx, err := s.l.LeaderBarrier(ctx)
	return reply(idx, err), nil
}

func reply(idx uint64, err error) *Reply {
	if err == nil {
		return &Reply{Index: idx}
	}
	r := &Reply{Err: err.Error()}
	var nl *store.NotLeaderError
	if errors.As(err, &nl) {
		r.Kind, r.Leader = "not_leader", nl.Addr
		return r
	}
	for name, s := range sentinels {
		if errors.Is(err, s) {
			r.Kind = name
			break
		}
	}
	return r
}

// remoteError is a leader's error, errors.Is-comparable with the store
// sentinel it named.
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }

func (r *Reply) err() error {
	if r.Err == "" {
		return nil
	}
	if r.Kind == "not_leader" {
		return &store.NotLeaderError{Addr: r.Leader}
	}
	return &remoteError{msg: r.Err, kind: sentinels[r.Kind]}
}

// Forwarder is the follower's side: store.Forwarder over gRPC.
type Forwarder struct {
	// Resolve maps the leader's Raft address to its gRPC address.
	Resolve func(raftAddr string) (string, error)
	// TLS is the client configuration (the manager's certificate); nil
	// dials in plain text, for tests only.
	TLS *tls.Config

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

var _ store.Forwarder = (*Forwarder)(nil)

// Apply commits cmd on the leader.
func (f *Forwarder) Apply(ctx context.Context, leaderAddr string, cmd []byte) (uint64, error) {
	return f.call(ctx, leaderAddr, applyMethod, &ApplyRequest{Cmd: cmd}, true)
}

// Barrier returns the leader's index after a barrier.
func (f *Forwarder) Barrier(ctx context.Context, leaderAddr string) (uint64, error) {
	return f.call(ctx, leaderAddr, barrierMethod, struct{}{}, false)
}

func (f *Forwarder) call(ctx context.Context, raftAddr, method string, req any, write bool) (uint64, error) {
	cc, err := f.conn(raftAddr)
	if err != nil {
		return 0, err
	}
	out := new(Reply)
	if err := cc.Invoke(ctx, method, req, out, grpc.CallContentSubtype(codecName)); err != nil {
		// Unavailable means no stream reached the leader: nothing was
		// proposed. Anything else may have left with the command.
		if write && status.Code(err) != codes.Unavailable && status.Code(err) != codes.PermissionDenied {
			return 0, fmt.Errorf("%w: %v", store.ErrUncertain, err)
		}
		if status.Code(err) == codes.Unavailable {
			// The store waits for Raft to name a leader and tries again.
			return 0, fmt.Errorf("%w: %w", store.ErrLeaderUnreachable, err)
		}
		return 0, err
	}
	return out.Index, out.err()
}

func (f *Forwarder) conn(raftAddr string) (*grpc.ClientConn, error) {
	addr, err := f.Resolve(raftAddr)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if cc, ok := f.conns[addr]; ok {
		return cc, nil
	}
	creds := insecure.NewCredentials()
	if f.TLS != nil {
		creds = credentials.NewTLS(f.TLS)
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	if f.conns == nil {
		f.conns = map[string]*grpc.ClientConn{}
	}
	f.conns[addr] = cc
	return cc, nil
}

// Close closes the connections.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for addr, cc := range f.conns {
		_ = cc.Close()
		delete(f.conns, addr)
	}
	return nil
}
