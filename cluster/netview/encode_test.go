package netview

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
)

// ViewJSON is byte for byte what json.Marshal makes of View, for every
// node of several clusters, for a node the index does not know, and for
// one peer alone; encoded concurrently, as sessions do.
func TestViewJSONIsTheViewsEncoding(t *testing.T) {
	onePeer := small()
	onePeer.Nodes = onePeer.Nodes[:1]
	clusters := map[string]Input{
		"fixture":  fixture(),
		"big":      bigCluster(),
		"small":    small(running("t1", "n1", "10.64.1.2/24"), running("t2", "n2", "10.64.2.2/24")),
		"one peer": onePeer,
		"empty":    {},
	}
	for name, in := range clusters {
		t.Run(name, func(t *testing.T) {
			ix := NewIndex(in)
			ids := []string{"unknown-node"}
			for _, n := range in.Nodes {
				ids = append(ids, n.ID)
			}
			var wg sync.WaitGroup
			for _, id := range ids {
				wg.Go(func() {
					want, err := json.Marshal(ix.View(id))
					if err != nil {
						t.Error(err)
						return
					}
					got, err := ix.ViewJSON(id)
					if err != nil {
						t.Error(err)
						return
					}
					if !bytes.Equal(got, want) {
						t.Errorf("node %s: ViewJSON differs from json.Marshal(View):\n got %.300s\nwant %.300s", id, got, want)
					}
				})
			}
			wg.Wait()
		})
	}
}

// The encodings are the index's own: a view encoded after another one
// of the same index decodes to its own node's view, not the other's.
func TestViewJSONDecodesToTheView(t *testing.T) {
	in := fixture()
	ix := NewIndex(in)
	for _, n := range in.Nodes {
		b, err := ix.ViewJSON(n.ID)
		if err != nil {
			t.Fatal(err)
		}
		var got api.NetView
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("node %s: %v", n.ID, err)
		}
		if want := ix.View(n.ID); !want.Equal(&got) {
			t.Errorf("node %s: the decoded view is not the node's view", n.ID)
		}
	}
}
