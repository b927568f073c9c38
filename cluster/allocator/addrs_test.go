package allocator

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
)

func TestGatewayAndUsable(t *testing.T) {
	for _, tc := range []struct {
		subnet  string
		gateway string
		usable  int
	}{
		{"10.64.3.0/24", "10.64.3.1", 253},
		{"10.64.3.7/24", "10.64.3.1", 253}, // host bits are masked
		{"10.0.0.16/28", "10.0.0.17", 13},
		{"10.0.0.8/29", "10.0.0.9", 5},
		{"10.0.0.4/30", "10.0.0.5", 1},
		{"10.0.0.2/31", "", 0}, // no room for a gateway
		{"10.0.0.1/32", "", 0},
	} {
		t.Run(tc.subnet, func(t *testing.T) {
			p := netip.MustParsePrefix(tc.subnet)
			if got := Gateway(p).String(); tc.gateway != "" && got != tc.gateway {
				t.Errorf("Gateway = %s, want %s", got, tc.gateway)
			}
			if got := Usable(p); got != tc.usable {
				t.Errorf("Usable = %d, want %d", got, tc.usable)
			}
		})
	}
}

// drain takes every address a node's subnet gives, until it is exhausted.
func drain(t *testing.T, a *TaskAddrs) []string {
	t.Helper()
	var got []string
	for range 1 << 10 {
		s, err := a.Next()
		if err != nil {
			if !errors.Is(err, ErrExhausted) {
				t.Fatalf("Next: %v, want ErrExhausted", err)
			}
			return got
		}
		got = append(got, s)
	}
	t.Fatal("Next never ran out")
	return nil
}

func TestTaskAddrsNeverNetworkGatewayBroadcast(t *testing.T) {
	for _, tc := range []struct {
		subnet string
		want   string
	}{
		{"10.0.0.8/29", "10.0.0.10/29 10.0.0.11/29 10.0.0.12/29 10.0.0.13/29 10.0.0.14/29"},
		{"10.0.0.4/30", "10.0.0.6/30"},
		{"10.0.0.2/31", ""},
		{"10.0.0.1/32", ""},
	} {
		t.Run(tc.subnet, func(t *testing.T) {
			a, err := NewTaskAddrs(mkNode("n1", withSubnet(tc.subnet)), nil)
			if err != nil {
				t.Fatal(err)
			}
			if a.Free() != Usable(netip.MustParsePrefix(tc.subnet)) {
				t.Errorf("Free = %d, want Usable = %d", a.Free(), Usable(netip.MustParsePrefix(tc.subnet)))
			}
			if got := strings.Join(drain(t, a), " "); got != tc.want {
				t.Errorf("addresses = %q, want %q", got, tc.want)
			}
			if a.Free() != 0 {
				t.Errorf("Free after exhaustion = %d", a.Free())
			}
		})
	}
}

func TestTaskAddrsExhaustedNamesPoolAndNode(t *testing.T) {
	n := mkNode("n1", withSubnet("10.0.0.4/30"))
	a, err := NewTaskAddrs(n, []*api.Task{mkTask("t1", "n1", "10.0.0.6/30", api.TaskRunning)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Next()
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("Next = %v, want ErrExhausted", err)
	}
	if want := "pool 10.0.0.4/30 exhausted on node n1"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	// Without a name the node is called by its hostname and ID.
	n.Spec.Name = ""
	a, _ = NewTaskAddrs(n, []*api.Task{mkTask("t1", "n1", "10.0.0.6/30", api.TaskRunning)})
	if _, err := a.Next(); err == nil || !strings.Contains(err.Error(), "node host-n1 (n1)") {
		t.Errorf("error = %v, want it to name host-n1 (n1)", err)
	}
}

func TestTaskAddrsNoSubnet(t *testing.T) {
	for _, s := range []string{"", "garbage", "fd00::/64"} {
		if _, err := NewTaskAddrs(mkNode("n1", withSubnet(s)), nil); err == nil || !strings.Contains(err.Error(), "node n1 has no task subnet") {
			t.Errorf("subnet %q: err = %v, want \"node n1 has no task subnet\"", s, err)
		}
	}
}

func TestTaskAddrsReadsTasks(t *testing.T) {
	n := mkNode("n1", withSubnet("10.0.0.8/29")) // .10 to .14
	tasks := []*api.Task{
		mkTask("t1", "n1", "10.0.0.10/29", api.TaskRunning),
		mkTask("t2", "n1", "10.0.0.11/29", api.TaskComplete), // ended: free again
		mkTask("t3", "n2", "10.0.0.12/29", api.TaskRunning),  // another node's: ignored
		mkTask("t4", "n1", "", api.TaskPending),              // no address yet
		mkTask("t5", "n1", "nonsense", api.TaskRunning),      // unreadable: ignored
		mkTask("t0", "n1", "10.0.0.13/29", api.TaskAssigned),
	}
	a, err := NewTaskAddrs(n, tasks)
	if err != nil {
		t.Fatal(err)
	}
	if a.Free() != 3 {
		t.Errorf("Free = %d, want 3 (.11, .12, .14)", a.Free())
	}
	// The newest task holding an address (t2, ended) sets the cursor: the
	// search starts after .11, and .11 itself comes last.
	if got, want := strings.Join(drain(t, a), " "), "10.0.0.12/29 10.0.0.14/29 10.0.0.11/29"; got != want {
		t.Errorf("addresses = %q, want %q", got, want)
	}
}

func TestTaskAddrsCursorWraps(t *testing.T) {
	n := mkNode("n1", withSubnet("10.0.0.8/29")) // .10 to .14
	var tasks []*api.Task
	place := func() string {
		t.Helper()
		a, err := NewTaskAddrs(n, tasks)
		if err != nil {
			t.Fatal(err)
		}
		s, err := a.Next()
		if err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, mkTask(fmt.Sprintf("t%02d", len(tasks)), "n1", s, api.TaskRunning))
		return s
	}
	for i, want := range []string{"10.0.0.10/29", "10.0.0.11/29", "10.0.0.12/29"} {
		if got := place(); got != want {
			t.Fatalf("task %d got %s, want %s", i, got, want)
		}
	}
	tasks[0].Status.State = api.TaskFailed // .10 is free, but behind the cursor
	if got := place(); got != "10.0.0.13/29" {
		t.Errorf("after freeing .10 got %s, want .13 (not a just-freed address)", got)
	}
	if got := place(); got != "10.0.0.14/29" {
		t.Errorf("got %s, want .14", got)
	}
	if got := place(); got != "10.0.0.10/29" {
		t.Errorf("at the end of the subnet got %s, want .10 (wrapped around)", got)
	}
	a, _ := NewTaskAddrs(n, tasks)
	if _, err := a.Next(); !errors.Is(err, ErrExhausted) {
		t.Errorf("full subnet: Next = %v, want ErrExhausted", err)
	}
}
