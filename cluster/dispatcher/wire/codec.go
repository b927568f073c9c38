package wire

import (
	"encoding/json"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// CodecName is the gRPC content subtype of the protocol
// ("application/grpc+gitorc-json").
const CodecName = "gitorc-json"

// Codec encodes messages as JSON. It is registered with grpc's encoding
// registry when this package is imported; clients select it with
// CallOption.
type Codec struct{}

// Marshal encodes v; a ManagerMessage made encoded (NetworkMessage) is
// sent as that encoding.
func (Codec) Marshal(v any) ([]byte, error) {
	if m, ok := v.(*ManagerMessage); ok && m.encoded != nil {
		return m.encoded, nil
	}
	return json.Marshal(v)
}

func (Codec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (Codec) Name() string                       { return CodecName }

func init() { encoding.RegisterCodec(Codec{}) }

// CallOption makes a client call use the JSON codec.
func CallOption() grpc.CallOption { return grpc.CallContentSubtype(CodecName) }
