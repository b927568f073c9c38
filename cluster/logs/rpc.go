package logs

import (
	"context"
	"encoding/json"
	"errors"
	"io"

	"github.com/gitorc/gitorc/cluster/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
)

// A follower forwards a query to the leader over the managers' gRPC
// port: one server-streaming call, the Query in, the merged Lines out.
const (
	ServiceName  = "gitorc.logs.v1.Logs"
	streamMethod = "/" + ServiceName + "/Stream"
	codecName    = "gitorc-logs-json"
)

type codec struct{}

func (codec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (codec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (codec) Name() string                       { return codecName }

func init() { encoding.RegisterCodec(codec{}) }

var streamDesc = grpc.StreamDesc{StreamName: "Stream", ServerStreams: true}

// Register serves forwarded queries on r, answered from this manager's
// sessions (Local). authorize vets each caller (managers only).
func Register(r grpc.ServiceRegistrar, s *Service, authorize func(context.Context) error) {
	desc := streamDesc
	desc.Handler = func(_ any, stream grpc.ServerStream) error {
		if authorize != nil {
			if err := authorize(stream.Context()); err != nil {
				return status.Error(codes.PermissionDenied, err.Error())
			}
		}
		var q Query
		if err := stream.RecvMsg(&q); err != nil {
			return err
		}
		if !s.cfg.Leader() {
			return status.Error(codes.Unavailable, "not leader: the leadership moved, ask again")
		}
		err := s.Local(stream.Context(), q, func(l api.LogLine) error { return stream.SendMsg(&l) })
		if err != nil {
			return status.Error(codes.Unknown, err.Error())
		}
		return nil
	}
	r.RegisterService(&grpc.ServiceDesc{ServiceName: ServiceName, HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{desc}, Metadata: "cluster/logs/rpc.go"}, s)
}

// Forward runs q on the manager at cc (the leader) and emits its lines.
func Forward(ctx context.Context, cc grpc.ClientConnInterface, q Query, emit func(api.LogLine) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := cc.NewStream(ctx, &streamDesc, streamMethod, grpc.CallContentSubtype(codecName))
	if err != nil {
		return err
	}
	if err := st.SendMsg(&q); err != nil {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	for {
		var l api.LogLine
		if err := st.RecvMsg(&l); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := emit(l); err != nil {
			return err
		}
	}
}
