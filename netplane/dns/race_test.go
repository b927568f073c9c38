package dns

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/gitorc/gitorc/cluster/api"
)

// SetView while queries run (go test -race): every answer is the whole
// answer of one view or of the other, never a mix, and once SetView
// returns, queries see the new view.
func TestSetViewDuringQueries(t *testing.T) {
	viewWith := func(addrs ...string) *api.NetView {
		v := testView()
		for i := range v.Services {
			if v.Services[i].ID == "s-cache" {
				v.Services[i].Backends = backends(addrs...)
			}
		}
		return v
	}
	a := viewWith("10.64.1.60", "10.64.1.61")
	b := viewWith("10.64.2.60", "10.64.2.61", "10.64.2.62")
	// kv. is shop_db's and shop_cache's: db's three backends and cache's.
	wantA := []string{"10.64.1.30", "10.64.1.60", "10.64.1.61", "10.64.2.30", "10.64.3.30"}
	wantB := []string{"10.64.1.30", "10.64.2.30", "10.64.2.60", "10.64.2.61", "10.64.2.62", "10.64.3.30"}
	s, addr := runServer(t, Config{}, a)

	const workers, queries = 4, 150
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan string, workers)
	for range workers {
		wg.Go(func() {
			cl := client(callAPI, "udp")
			co, err := cl.Dial(addr)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer co.Close()
			for range queries {
				m := new(dns.Msg)
				m.SetQuestion("kv.", dns.TypeA)
				r, _, err := cl.ExchangeWithConn(m, co)
				if err != nil {
					errs <- err.Error()
					return
				}
				var got []string
				for _, rr := range r.Answer {
					got = append(got, rr.(*dns.A).A.String())
				}
				sort.Strings(got)
				if !slices.Equal(got, wantA) && !slices.Equal(got, wantB) {
					errs <- fmt.Sprintf("kv. answered %v: neither view's", got)
					return
				}
			}
		})
	}
	swapped := make(chan struct{})
	go func() {
		defer close(swapped)
		views := []*api.NetView{b, a}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
				s.SetView(views[i%2])
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-swapped
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	for _, c := range []struct {
		v    *api.NetView
		want []string
	}{{b, wantB}, {a, wantA}, {b, wantB}} {
		s.SetView(c.v)
		if got := resultOf(query(t, addr, callAPI, "udp", "kv.", dns.TypeA)); !slices.Equal(got.Addrs, c.want) {
			t.Fatalf("after SetView: %v, want %v", got.Addrs, c.want)
		}
	}
}
