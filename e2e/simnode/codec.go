package simnode

import (
	"bytes"
	"sync/atomic"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"google.golang.org/grpc/encoding"
)

// viewlessCodec is the protocol's codec, registered in its place in this
// process, with one difference: a manager message that carries a network
// view is received whole but not parsed. A simulated node has no network
// plane (the session drops its views unread), and a view is megabytes at
// thousands of nodes: parsing 5,000 of them after every change is the
// work of 5,000 machines, done here on the CPUs the managers share.
type viewlessCodec struct{ wire.Codec }

// networkPrefix starts every manager message with a view: its only field
// (wire.ManagerMessage.Validate), encoded first.
var networkPrefix = []byte(`{"network":`)

// views counts the views the simulated nodes received, and their bytes.
var views struct{ n, bytes atomic.Int64 }

func (c viewlessCodec) Unmarshal(data []byte, v any) error {
	if m, ok := v.(*wire.ManagerMessage); ok && bytes.HasPrefix(data, networkPrefix) {
		*m = wire.ManagerMessage{Network: &api.NetView{}}
		views.n.Add(1)
		views.bytes.Add(int64(len(data)))
		return nil
	}
	return c.Codec.Unmarshal(data, v)
}

func init() { encoding.RegisterCodec(viewlessCodec{}) }

// ViewsReceived is how many network views the simulated nodes of this
// process received, and their size in bytes.
func ViewsReceived() (n, size int64) { return views.n.Load(), views.bytes.Load() }
