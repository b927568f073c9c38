package wire

import (
	"context"

	"github.com/gitorc/gitorc/cluster/api"

	"google.golang.org/grpc"
)

// JoinServiceName and the full method name of Join.
const (
	JoinServiceName = "gitorc.ca.v1.CA"
	JoinMethod      = "/" + JoinServiceName + "/Join"
)

// JoinRequest is a new node asking for its certificate. The token's secret
// says which role it may have; the connection has pinned the CA by the
// token's digest, so the secret goes only to this cluster.
type JoinRequest struct {
	Token string `json:"token"`
	CSR   []byte `json:"csr"`
	// A joining manager says where the others reach it: its API (Addr)
	// and its Raft transport (RaftAddr).
	Addr     string `json:"addr,omitempty"`
	RaftAddr string `json:"raft_addr,omitempty"`
	Hostname string `json:"hostname,omitempty"`
}

// JoinResponse is the new node's identity.
type JoinResponse struct {
	NodeID   string       `json:"node_id"`
	Role     api.NodeRole `json:"role"`
	Cert     []byte       `json:"cert"`
	CA       []byte       `json:"ca"`
	Managers []string     `json:"managers"` // where its session goes
	// DataKey is the cluster's data key, for a manager only: its replica
	// of the store is encrypted with it. The connection is TLS to the CA
	// the token pinned.
	DataKey []byte `json:"data_key,omitempty"`
}

// JoinServer is what a manager implements.
type JoinServer interface {
	Join(context.Context, *JoinRequest) (*JoinResponse, error)
}

// JoinServiceDesc describes the CA service to grpc.
var JoinServiceDesc = grpc.ServiceDesc{
	ServiceName: JoinServiceName,
	HandlerType: (*JoinServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Join",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			req := new(JoinRequest)
			if err := dec(req); err != nil {
				return nil, err
			}
			return srv.(JoinServer).Join(ctx, req)
		},
	}},
	Metadata: "cluster/dispatcher/wire/join.go",
}

// RegisterJoin registers s on a gRPC server.
func RegisterJoin(r grpc.ServiceRegistrar, s JoinServer) { r.RegisterService(&JoinServiceDesc, s) }

// Join asks the manager at the other end of cc for a certificate.
func Join(ctx context.Context, cc grpc.ClientConnInterface, req *JoinRequest) (*JoinResponse, error) {
	out := new(JoinResponse)
	if err := cc.Invoke(ctx, JoinMethod, req, out, CallOption()); err != nil {
		return nil, err
	}
	return out, nil
}
