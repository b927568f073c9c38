package simnode

import (
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"google.golang.org/grpc/encoding"
)

// In this process the protocol's codec receives views unparsed and
// counts them, and decodes every other message as the protocol's does.
func TestViewsAreReceivedUnparsed(t *testing.T) {
	c := encoding.GetCodec(wire.CodecName)
	if _, ok := c.(viewlessCodec); !ok {
		t.Fatalf("the codec registered as %s is %T, want the simulator's", wire.CodecName, c)
	}
	view, err := c.Marshal(&wire.ManagerMessage{Network: &api.NetView{NodeID: "n1", Subnet: "10.64.1.0/24"}})
	if err != nil {
		t.Fatal(err)
	}
	n0, b0 := ViewsReceived()
	var m wire.ManagerMessage
	if err := c.Unmarshal(view, &m); err != nil {
		t.Fatal(err)
	}
	if m.Network == nil || m.Network.NodeID != "" {
		t.Errorf("a view was received as %+v, want an empty view (not parsed)", m.Network)
	}
	if n, b := ViewsReceived(); n != n0+1 || b != b0+int64(len(view)) {
		t.Errorf("views received: %d (%d bytes), want %d (%d bytes)", n, b, n0+1, b0+int64(len(view)))
	}
	set, err := c.Marshal(&wire.ManagerMessage{Assignments: &wire.AssignmentSet{Seq: 7}})
	if err != nil {
		t.Fatal(err)
	}
	var a wire.ManagerMessage
	if err := c.Unmarshal(set, &a); err != nil {
		t.Fatal(err)
	}
	if a.Assignments == nil || a.Assignments.Seq != 7 {
		t.Errorf("an assignment set was received as %+v, want Seq 7", a.Assignments)
	}
}
