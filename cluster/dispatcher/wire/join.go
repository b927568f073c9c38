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
	RenewMethod     = "/" + JoinServiceName + "/Renew"
)

// RenewRequest is a node, authenticated by its current certificate, asking
// what role the cluster wants it in and, with a CSR, for a new certificate
// in that role.
type RenewRequest struct {
	// CSR is empty to ask only for the role.
	CSR []byte `json:"csr,omitempty"`
	// A node becoming a manager says where the others reach it.
	Addr     string `json:"addr,omitempty"`
	RaftAddr string `json:"raft_addr,omitempty"`
}

// RenewResponse is the role the cluster wants the node in and, for a CSR,
// its new certificate (and the data key if it becomes a manager).
type RenewResponse struct {
	Role    api.NodeRole `json:"role"`
	Cert    []byte       `json:"cert,omitempty"`
	DataKey []byte       `json:"data_key,omitempty"`
	// UnlockKey seals the data key on the new manager's disk when the
	// cluster is autolocked.
	UnlockKey []byte   `json:"unlock_key,omitempty"`
	Managers  []string `json:"managers,omitempty"`
	// Roots are the root certificates (PEM) the node is to trust: the
	// cluster's, and the next one during a root rotation.
	Roots []byte `json:"roots,omitempty"`
	// RotateTo, during a root rotation, is the new root (PEM): a node
	// whose certificate it did not issue renews it.
	RotateTo []byte `json:"rotate_to,omitempty"`
}

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
	// NoWorker: a joining manager that runs no tasks (its node is
	// registered drained).
	NoWorker bool `json:"no_worker,omitempty"`
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
	// UnlockKey, when the cluster is autolocked, seals the data key on
	// the new manager's disk.
	UnlockKey []byte `json:"unlock_key,omitempty"`
}

// JoinServer is what a manager implements.
type JoinServer interface {
	Join(context.Context, *JoinRequest) (*JoinResponse, error)
	Renew(context.Context, *RenewRequest) (*RenewResponse, error)
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
	}, {
		MethodName: "Renew",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			req := new(RenewRequest)
			if err := dec(req); err != nil {
				return nil, err
			}
			return srv.(JoinServer).Renew(ctx, req)
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

// Renew asks the manager at the other end of cc for this node's role and,
// with a CSR, a new certificate. The connection must carry the node's
// current certificate.
func Renew(ctx context.Context, cc grpc.ClientConnInterface, req *RenewRequest) (*RenewResponse, error) {
	out := new(RenewResponse)
	if err := cc.Invoke(ctx, RenewMethod, req, out, CallOption()); err != nil {
		return nil, err
	}
	return out, nil
}
