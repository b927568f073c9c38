package orchestrator

import (
	"context"
	"fmt"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkStateCollectorScrape is one scrape's cost of the rollout and
// task gauges on a store of 1,000 services with 3 tasks each.
func BenchmarkStateCollectorScrape(b *testing.B) {
	s := storetest.New(b, storetest.Options{Managers: 1}).Store(0)
	const services, perService = 1000, 3
	for lo := 0; lo < services; lo += 100 {
		if _, err := s.Update(context.Background(), func(tx store.Tx) error {
			for i := lo; i < lo+100; i++ {
				svc := &api.Service{Spec: api.ServiceSpec{Name: fmt.Sprintf("stack_svc%04d", i), Replicas: perService},
					Update: &api.UpdateStatus{State: api.UpdateCompleted}}
				if err := tx.Create(svc); err != nil {
					return err
				}
				for slot := range perService {
					t := &api.Task{ServiceID: svc.ID, ServiceName: svc.Spec.Name, Slot: uint64(slot + 1), NodeID: "n1",
						DesiredState: api.TaskRunning, Status: api.TaskStatus{State: api.TaskRunning}}
					if err := tx.Create(t); err != nil {
						return err
					}
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewStateCollector(s))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		mfs, err := reg.Gather()
		if err != nil || len(mfs) != 2 || len(mfs[1].GetMetric()) != services {
			b.Fatalf("gather: %v, %d families", err, len(mfs))
		}
	}
}
