package storetest_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// The linearizability check: clients put and get registers (configs whose
// Data is the value) through random managers while a nemesis kills,
// restarts and partitions managers; porcupine checks the history against a
// sequential register model.

// pick returns a random running manager.
func pick(c *storetest.Cluster, r *rand.Rand) *store.Store {
	live := c.Live()
	if len(live) == 0 {
		return nil
	}
	return c.Store(live[r.IntN(len(live))])
}

func put(ctx context.Context, s *store.Store, key, value string) error {
	_, err := s.Update(ctx, func(tx store.Tx) error {
		cs, err := store.Find[api.Config](tx, store.ByName(key))
		if err != nil {
			return err
		}
		if len(cs) != 1 {
			return fmt.Errorf("register %s: %d objects", key, len(cs))
		}
		cs[0].Spec.Data = []byte(value)
		return tx.Update(cs[0])
	})
	return err
}

func get(ctx context.Context, s *store.Store, key string) (string, error) {
	var v string
	err := s.ConsistentView(ctx, func(tx store.ReadTx) error {
		cs, err := store.Find[api.Config](tx, store.ByName(key))
		if err != nil {
			return err
		}
		if len(cs) != 1 {
			return fmt.Errorf("register %s: %d objects", key, len(cs))
		}
		v = string(cs[0].Spec.Data)
		return nil
	})
	return v, err
}

func TestLinearizableUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection run")
	}
	// The harness's quick elections, and the store's own default timing
	// (what managers run with), with the harness's snapshot settings.
	prod := storetest.TestTuning()
	prod.HeartbeatTimeout, prod.ElectionTimeout, prod.LeaderLeaseTimeout, prod.CommitTimeout = 0, 0, 0, 0
	for _, tc := range []struct {
		name string
		raft store.RaftTuning
	}{{"test timing", storetest.TestTuning()}, {"default timing", prod}} {
		t.Run(tc.name, func(t *testing.T) { linearizableUnderFaults(t, tc.raft) })
	}
}

func linearizableUnderFaults(t *testing.T, raft store.RaftTuning) {
	c := storetest.New(t, storetest.Options{Raft: raft})
	keys := []string{"k0", "k1", "k2"}
	for _, k := range keys {
		createRetry(t, c, k, "")
	}
	mustConverge(t, c)

	h := storetest.NewHistory()
	ctx, stop := context.WithTimeout(context.Background(), 6*time.Second)
	defer stop()
	var wg sync.WaitGroup
	var errMu sync.Mutex
	errCount := map[string]int{}
	noteErr := func(err error) {
		errMu.Lock()
		errCount[err.Error()]++
		errMu.Unlock()
	}
	defer func() {
		for e, n := range errCount {
			t.Logf("%4d × %s", n, e)
		}
	}()
	const clients = 4
	var stats [clients]struct{ ok, failed, unknown int }
	for cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(cl), 42))
			for n := 0; ctx.Err() == nil && n < 400; n++ {
				s := pick(c, r)
				if s == nil {
					continue
				}
				key := keys[r.IntN(len(keys))]
				octx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
				if r.IntN(2) == 0 {
					in := storetest.RegisterInput{Put: true, Key: key, Value: fmt.Sprintf("c%d-%d", cl, n)}
					call := h.Now()
					err := put(octx, s, key, in.Value)
					for errors.Is(err, store.ErrVersionConflict) && octx.Err() == nil { // rejected: try again
						err = put(octx, s, key, in.Value)
					}
					switch {
					case err == nil:
						h.Add(porcupine.Operation{ClientId: cl, Input: in, Call: call, Output: storetest.RegisterOutput{}, Return: h.Now()})
						stats[cl].ok++
					case errors.Is(err, store.ErrUncertain):
						// May apply at any later time: it returns "never".
						h.Add(porcupine.Operation{ClientId: cl, Input: in, Call: call,
							Output: storetest.RegisterOutput{Unknown: true}, Return: math.MaxInt64})
						stats[cl].unknown++
					default: // definitely not applied
						stats[cl].failed++
						noteErr(err)
					}
				} else {
					call := h.Now()
					v, err := get(octx, s, key)
					if err == nil {
						h.Add(porcupine.Operation{ClientId: cl, Input: storetest.RegisterInput{Key: key}, Call: call,
							Output: storetest.RegisterOutput{Value: v}, Return: h.Now()})
						stats[cl].ok++
					} else {
						stats[cl].failed++
						noteErr(err)
					}
				}
				cancel()
			}
		}()
	}

	// Nemesis: a fault every few hundred milliseconds while clients run.
	faults := []string{"kill-leader", "restart", "partition-leader", "heal", "partition-follower", "heal"}
	r := rand.New(rand.NewPCG(7, 7))
	var killed []int
	tick := time.NewTicker(500 * time.Millisecond)
	for i := 0; ctx.Err() == nil; i++ {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		if ctx.Err() != nil {
			break
		}
		switch f := faults[i%len(faults)]; f {
		case "kill-leader":
			if l := c.Leader(); l >= 0 {
				c.Kill(l)
				killed = append(killed, l)
			}
		case "restart":
			for _, k := range killed {
				if err := c.Restart(k); err != nil {
					t.Errorf("restart %d: %v", k, err)
				}
			}
			killed = nil
		case "partition-leader":
			if l := c.Leader(); l >= 0 {
				c.Partition(l)
			}
		case "partition-follower":
			live := c.Live()
			l := c.Leader()
			for _, j := range r.Perm(len(live)) {
				if live[j] != l {
					c.Partition(live[j])
					break
				}
			}
		case "heal":
			c.Heal()
		}
	}
	tick.Stop()
	wg.Wait()
	c.Heal()
	for _, k := range killed {
		if err := c.Restart(k); err != nil {
			t.Fatal(err)
		}
	}

	var total, unknown int
	for _, s := range stats {
		total += s.ok
		unknown += s.unknown
	}
	t.Logf("operations: %d completed, %d with unknown outcome; per client %+v", total, unknown, stats)
	if total < 50 {
		t.Fatalf("only %d operations completed: the run proves little", total)
	}
	res, info := porcupine.CheckOperationsVerbose(storetest.RegisterModel, h.Ops(), 60*time.Second)
	if res != porcupine.Ok {
		path := filepath.Join(t.TempDir(), "history.html")
		if err := porcupine.VisualizePath(storetest.RegisterModel, info, path); err == nil {
			t.Logf("visualization: %s", path)
		}
		t.Fatalf("history is not linearizable: %s", res)
	}
	if _, err := c.WaitLeader(waitLong); err != nil {
		t.Fatal(err)
	}
	mustConverge(t, c)
}
