package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/google/go-cmp/cmp"
)

// TestTxnCompression: a transaction of similar objects is proposed
// compressed, and what is encoded decodes to exactly itself.
func TestTxnCompression(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		obj    func(i int) api.Object
		format byte
	}{
		{"tasks of a service", func(i int) api.Object {
			return &api.Task{Meta: api.Meta{ID: fmt.Sprintf("t%03d", i)}, ServiceID: "svc", ServiceName: "shop_web",
				Slot: uint64(i), NodeID: fmt.Sprintf("node-%d", i%5), DesiredState: api.TaskRunning,
				Spec: api.TaskSpec{Container: api.ContainerSpec{Image: "registry.local/shop/web:1.4.2"}}}
		}, txnFormatS2},
		{"random config data", func(i int) api.Object {
			return &api.Config{Meta: api.Meta{ID: fmt.Sprintf("c%03d", i)}, Spec: api.ConfigSpec{Name: fmt.Sprintf("c%03d", i), Data: noise(2000)}}
		}, 0}, // base64 of random bytes: it depends
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &writeTx{now: now}
			for i := range 50 {
				if err := w.Create(tt.obj(i)); err != nil {
					t.Fatal(err)
				}
			}
			want := &txnCmd{Time: now, Ops: w.ops}
			cmd, err := encodeTxn(want)
			if err != nil {
				t.Fatal(err)
			}
			if tt.format != 0 && cmd[1] != tt.format {
				t.Fatalf("format %d, want %d", cmd[1], tt.format)
			}
			got, err := decodeTxn(cmd)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("decoded (-encoded +decoded):\n%s", diff)
			}
		})
	}
}

// TestTxnCompressionBounded: a compressed body that claims to expand
// beyond maxS2Ratio is rejected before anything is allocated for it.
func TestTxnCompressionBounded(t *testing.T) {
	bomb := []byte{cmdTxn, txnFormatS2}
	bomb = binary.AppendUvarint(bomb, 1<<40) // s2 block header: the decoded length
	bomb = append(bomb, 0, 0, 0, 0)
	if _, err := decodeTxn(bomb); !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	if cmd := compressTxn(append([]byte{cmdTxn, txnFormat}, noise(4000)...)); cmd[1] != txnFormat {
		t.Errorf("a body that does not compress was compressed")
	}
	body := make([]byte, 8<<20) // zeros: compresses far beyond maxS2Ratio
	cmd := compressTxn(append([]byte{cmdTxn, txnFormat}, body...))
	if cmd[1] != txnFormat {
		t.Errorf("a body that compresses %d times was compressed", len(body)/len(cmd))
	}
}
