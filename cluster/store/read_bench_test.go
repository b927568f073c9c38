package store

import (
	"bytes"
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/hashicorp/raft"
)

// benchTask is a task as the orchestrator makes them for a typical service.
func benchTask(i int, now time.Time) *api.Task {
	return &api.Task{
		ServiceID: "svc", ServiceName: "shop_web", Slot: uint64(i), NodeID: fmt.Sprintf("node-%d", i%5),
		SpecVersion: 7, DesiredState: api.TaskRunning,
		Spec: api.TaskSpec{
			Container: api.ContainerSpec{
				Image:   "registry.local/shop/web:1.4.2",
				Command: []string{"/bin/web"}, Args: []string{"--port", "8080"},
				Env:     []string{"A=1", "B=2", "DB=shop_db:5432"},
				Labels:  map[string]string{api.LabelStack: "shop", api.LabelManagedBy: "gitorc"},
				Mounts:  []api.Mount{{Type: api.MountVolume, Source: "shop_data", Target: "/data"}},
				Secrets: []api.FileRef{{Name: "shop_db_password", Target: "/run/secrets/db", UID: "0", GID: "0", Mode: 0o400}},
				Healthcheck: &api.Healthcheck{Test: []string{"CMD", "wget", "-q", "localhost:8080/health"},
					Interval: api.Duration(5 * time.Second), Timeout: api.Duration(time.Second), Retries: 3},
				StopGracePeriod: api.DefaultStopGracePeriod,
			},
			Resources: api.ResourceRequirements{Limits: api.Resources{Memory: 256 << 20, NanoCPUs: 500_000_000}},
			Restart:   api.DefaultRestartPolicy(),
		},
		Status: api.TaskStatus{State: api.TaskRunning, Timestamp: now, Message: "started",
			Health: api.HealthHealthy, ContainerID: fmt.Sprintf("c-%d", i)},
		Addr:    fmt.Sprintf("10.0.1.%d/24", i%250+2),
		ReadyAt: now,
	}
}

// benchReadFSM returns an FSM holding n tasks of one service (and 3 of
// another), and the ID of one of them.
func benchReadFSM(b *testing.B, n int) (*fsm, *DataKey, string) {
	b.Helper()
	key, err := NewDataKey()
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	f := newFSM(slog.New(slog.DiscardHandler), newHub(16))
	w := &writeTx{readTx: readTx{key: key}, now: now}
	var id string
	for i := range n + 3 {
		t := benchTask(i, now)
		if i >= n {
			t.ServiceID = "other"
		}
		if err := w.Create(t); err != nil {
			b.Fatal(err)
		}
		if i == n/2 {
			id = t.ID
		}
	}
	cmd, err := encodeTxn(&txnCmd{Time: now, Ops: w.ops})
	if err != nil {
		b.Fatal(err)
	}
	if res := f.ApplyBatch([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand, Data: cmd}})[0].(*applyResult); res.err != nil {
		b.Fatal(res.err)
	}
	return f, key, id
}

// BenchmarkRead measures what the leader's controllers pay to read tasks:
// Find of the 1000 tasks of a service, and Get of one task. warm reads
// records that have been read before (a leader's steady state: every
// orchestrator pass reads every task again); cold reads records that
// nothing has read yet (the first read after they were applied or
// restored). ns/op and allocs/op are per call (per 1000 tasks for Find).
func BenchmarkRead(b *testing.B) {
	const n = 1000
	find := func(b *testing.B, tx ReadTx) {
		ts, err := Find[api.Task](tx, ByService("svc"))
		if err != nil || len(ts) != n {
			b.Fatalf("find: %d tasks, %v", len(ts), err)
		}
	}
	b.Run("warm/Find1000", func(b *testing.B) {
		f, key, _ := benchReadFSM(b, n)
		txn, idx := f.view()
		tx := &readTx{txn: txn, index: idx, key: key}
		// What the decoded objects cost in memory (held by the records
		// once read; 0 when nothing keeps them).
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		find(b, tx)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			find(b, tx)
		}
		b.StopTimer()
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "heldB/task")
	})
	b.Run("warm/Get", func(b *testing.B) {
		f, key, id := benchReadFSM(b, n)
		txn, idx := f.view()
		tx := &readTx{txn: txn, index: idx, key: key}
		if _, err := Get[api.Task](tx, id); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := Get[api.Task](tx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cold/Find1000", func(b *testing.B) {
		f, key, _ := benchReadFSM(b, n)
		snap, err := f.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if err := snap.(*fsmSnapshot).write(&buf); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			db, idx, _, err := readSnapshot(bytes.NewReader(buf.Bytes())) // records never read
			if err != nil {
				b.Fatal(err)
			}
			tx := &readTx{txn: db.Txn(false), index: idx, key: key}
			b.StartTimer()
			find(b, tx)
		}
	})
}
