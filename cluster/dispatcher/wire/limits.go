package wire

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Limits of the protocol, the same on both ends.
const (
	// MaxMessageSize bounds one message. An assignment carries a node's
	// tasks and the secrets and configs they use (each at most 500 KiB,
	// as Swarm's): 16 MiB leaves room for a busy node and refuses a
	// runaway one.
	MaxMessageSize = 16 << 20
	// KeepaliveTime is how long a quiet connection waits before a ping;
	// a peer that does not answer within KeepaliveTimeout is gone, so a
	// half-open connection (a host cut off) is noticed in seconds, not
	// at the kernel's TCP timeout.
	KeepaliveTime    = 10 * time.Second
	KeepaliveTimeout = 5 * time.Second
	// MaxStreams bounds the concurrent streams of one connection: a
	// worker holds one session stream, a manager a few calls.
	MaxStreams = 64
)

// ServerOptions are a manager's gRPC server options for the protocol.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageSize),
		grpc.MaxSendMsgSize(MaxMessageSize),
		grpc.MaxConcurrentStreams(MaxStreams),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: KeepaliveTime, Timeout: KeepaliveTimeout}),
		// Clients ping every KeepaliveTime even between calls; allow it
		// (the default policy would close them for pinging too often).
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: KeepaliveTime / 2, PermitWithoutStream: true}),
	}
}

// DialOptions are a client's gRPC options for the protocol.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: KeepaliveTime, Timeout: KeepaliveTimeout, PermitWithoutStream: true}),
	}
}
