package wire

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ServiceName and the full method name of the session stream.
const (
	ServiceName   = "gitorc.dispatcher.v1.Dispatcher"
	SessionMethod = "/" + ServiceName + "/Session"
)

// SessionStream is the leader's side of a session.
type SessionStream = grpc.BidiStreamingServer[WorkerMessage, ManagerMessage]

// SessionClient is the worker's side of a session.
type SessionClient = grpc.BidiStreamingClient[WorkerMessage, ManagerMessage]

// Server is what the leader implements.
type Server interface {
	Session(SessionStream) error
}

// ServiceDesc describes the Dispatcher service to grpc.
var ServiceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*Server)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Session",
		Handler:       sessionHandler,
		ServerStreams: true,
		ClientStreams: true,
	}},
	Metadata: "cluster/dispatcher/wire/service.go",
}

func sessionHandler(srv any, stream grpc.ServerStream) error {
	return srv.(Server).Session(&grpc.GenericServerStream[WorkerMessage, ManagerMessage]{ServerStream: stream})
}

// Register registers s on a gRPC server.
func Register(r grpc.ServiceRegistrar, s Server) { r.RegisterService(&ServiceDesc, s) }

// OpenSession opens a session stream on cc, with the JSON codec.
func OpenSession(ctx context.Context, cc grpc.ClientConnInterface, opts ...grpc.CallOption) (SessionClient, error) {
	opts = append([]grpc.CallOption{CallOption()}, opts...)
	s, err := cc.NewStream(ctx, &ServiceDesc.Streams[0], SessionMethod, opts...)
	if err != nil {
		return nil, err
	}
	return &grpc.GenericClientStream[WorkerMessage, ManagerMessage]{ClientStream: s}, nil
}

const notLeaderPrefix = "not leader; leader is at "

// ErrNoLeader is the message a manager answers with when it knows no leader.
var ErrNoLeader = errors.New("not leader; no leader known")

// NotLeader is the error a follower answers a session with: a gRPC
// FailedPrecondition whose message carries the leader's dispatcher
// address (empty when no leader is known).
func NotLeader(addr string) error {
	if addr == "" {
		return status.Error(codes.Unavailable, ErrNoLeader.Error())
	}
	return status.Error(codes.FailedPrecondition, notLeaderPrefix+addr)
}

// LeaderAddr returns the leader's address from an error made by NotLeader,
// as a client received it.
func LeaderAddr(err error) (string, bool) {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.FailedPrecondition {
		return "", false
	}
	addr, found := strings.CutPrefix(st.Message(), notLeaderPrefix)
	if !found || addr == "" {
		return "", false
	}
	return addr, true
}

// Validate checks that exactly one field of a worker message is set.
func (m *WorkerMessage) Validate() error {
	n := 0
	for _, set := range []bool{m.Hello != nil, m.Heartbeat != nil, m.Status != nil, m.LogsChunk != nil, m.LogsEnd != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("worker message: %d fields set, want 1", n)
	}
	return nil
}
