package store

import (
	"context"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// histCount is the number of observations of a histogram.
func histCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(h)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 {
		t.Fatalf("gather: %v (%d families)", err, len(mfs))
	}
	return mfs[0].GetMetric()[0].GetHistogram().GetSampleCount()
}

// The leader gauge follows leadership and drops when the store closes;
// every write is timed from proposal to commit, every applied batch too.
func TestStoreMetrics(t *testing.T) {
	m := NewMetrics()
	s := newLeaderStore(t, func(c *Config) { c.Metrics = m })
	waitFor(t, "leader gauge", func() bool { return testutil.ToFloat64(m.leader) == 1 })
	commits, applied := histCount(t, m.commit), testutil.ToFloat64(m.entries)
	for i := range 3 {
		if _, err := s.Update(context.Background(), func(tx Tx) error {
			return tx.Create(&api.Config{Spec: api.ConfigSpec{Name: "c" + string(rune('a'+i)), Data: []byte("x")}})
		}); err != nil {
			t.Fatal(err)
		}
	}
	if got := histCount(t, m.commit); got != commits+3 {
		t.Errorf("commit observations %d, want %d", got, commits+3)
	}
	if got := testutil.ToFloat64(m.entries); got < applied+3 {
		t.Errorf("applied entries %v, want at least %v", got, applied+3)
	}
	if histCount(t, m.apply) == 0 {
		t.Error("no apply observed")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.leader); got != 0 {
		t.Errorf("leader gauge %v after Close, want 0", got)
	}
}
