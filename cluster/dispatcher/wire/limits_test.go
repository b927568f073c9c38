package wire

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

type sizedJoin struct{}

func (sizedJoin) Join(context.Context, *JoinRequest) (*JoinResponse, error) {
	return &JoinResponse{NodeID: "n1"}, nil
}

func (sizedJoin) Renew(context.Context, *RenewRequest) (*RenewResponse, error) {
	return nil, status.Error(codes.Unimplemented, "no")
}

// A message over MaxMessageSize is refused; one under it goes through.
func TestMessageSizeLimit(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(ServerOptions()...)
	RegisterJoin(srv, sizedJoin{})
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	cc, err := grpc.NewClient(ln.Addr().String(), append(DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	// JSON encodes bytes as base64: 4/3 of the size, plus the envelope.
	if _, err := Join(context.Background(), cc, &JoinRequest{CSR: make([]byte, MaxMessageSize/2)}); err != nil {
		t.Errorf("a message under the limit: %v", err)
	}
	_, err = Join(context.Background(), cc, &JoinRequest{CSR: make([]byte, MaxMessageSize)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a message over the limit: %v, want ResourceExhausted", err)
	}
}
