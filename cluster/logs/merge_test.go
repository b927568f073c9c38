package logs

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gitorc/gitorc/cluster/api"
)

func rec(sec int, line string) api.LogRecord {
	return api.LogRecord{Time: time.Date(2030, 1, 1, 0, 0, sec, 0, time.UTC), Stream: api.LogStdout, Line: line}
}

// Backlogs interleave in time order: nothing goes while a stream still
// reading its backlog has no line; a live stream does not hold others.
func TestMergeOrder(t *testing.T) {
	m := newMerger()
	m.add(0)
	m.add(1)
	var out []string
	drain := func() {
		for {
			id, ok := m.next()
			if !ok {
				return
			}
			out = append(out, m.pop(id).Line)
		}
	}
	m.feed(0, []api.LogRecord{rec(1, "a1"), rec(3, "a3")}, false)
	drain()
	if len(out) != 0 {
		t.Fatalf("emitted %q before stream 1 had a line", out)
	}
	m.feed(1, []api.LogRecord{rec(2, "b2")}, false)
	drain() // a1, b2; then stream 1 is empty and in backlog: wait
	if diff := cmp.Diff([]string{"a1", "b2"}, out); diff != "" {
		t.Fatal(diff)
	}
	m.feed(1, nil, true) // stream 1 caught up
	drain()
	m.end(0)
	drain()
	if diff := cmp.Diff([]string{"a1", "b2", "a3"}, out); diff != "" {
		t.Fatal(diff)
	}
	if m.done() {
		t.Fatal("done with a live stream open")
	}
	m.end(1)
	if !m.done() {
		t.Fatal("not done after every stream ended")
	}
}

func TestLinePrefix(t *testing.T) {
	for _, tc := range []struct {
		l    api.LogLine
		want string
	}{
		{api.LogLine{Service: "web", Slot: 2, Node: "n3"}, "web.2@n3"},
		{api.LogLine{Service: "agent", Node: "n1"}, "agent.n1@n1"},
	} {
		if got := tc.l.Prefix(); got != tc.want {
			t.Errorf("Prefix() = %q, want %q", got, tc.want)
		}
	}
}
