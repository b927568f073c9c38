package store

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/hashicorp/raft"
)

// BenchmarkFSMApply measures what every manager pays per object: applying
// committed transactions of 100 new tasks, 8 entries per Raft batch, to a
// state that grows as it goes. ns/op is per object.
func BenchmarkFSMApply(b *testing.B) {
	const perTxn, perBatch = 100, 8
	key, err := NewDataKey()
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var cmds [][]byte
	for i := 0; i < b.N; i += perTxn {
		now = now.Add(time.Millisecond)
		w := &writeTx{readTx: readTx{key: key}, now: now}
		for j := i; j < min(i+perTxn, b.N); j++ {
			t := &api.Task{ServiceID: "svc", ServiceName: "shop_web", Slot: uint64(j), NodeID: fmt.Sprintf("node-%d", j%5),
				DesiredState: api.TaskRunning, Spec: api.TaskSpec{Container: api.ContainerSpec{Image: "registry.local/shop/web:1.4.2",
					Env: []string{"A=1", "B=2"}}}}
			if err := w.Create(t); err != nil {
				b.Fatal(err)
			}
		}
		cmd, err := encodeTxn(&txnCmd{Time: now, Ops: w.ops})
		if err != nil {
			b.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	f := newFSM(slog.New(slog.DiscardHandler), newHub(16))
	b.ReportAllocs()
	b.ResetTimer()
	var index uint64
	for len(cmds) > 0 {
		n := min(perBatch, len(cmds))
		logs := make([]*raft.Log, n)
		for i := range logs {
			index++
			logs[i] = &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: cmds[i]}
		}
		cmds = cmds[n:]
		for _, r := range f.ApplyBatch(logs) {
			if res := r.(*applyResult); res.err != nil {
				b.Fatal(res.err)
			}
		}
	}
}
