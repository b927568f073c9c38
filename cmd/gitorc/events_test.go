package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/controlapi"
)

// gitorc events --since replays the objects changed since then, one JSON
// object a line with -o json, a line each as text; --until ends it.
func TestEventsCommand(t *testing.T) {
	serveAPI(t)
	out := mustRun(t, "events", "--since", "87600h", "--until", "500ms", "--filter", "type=task", "-o", "json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 6 {
		t.Fatalf("events -o json: %d lines, want the seed's 6 tasks at least:\n%s", len(lines), out)
	}
	for _, l := range lines {
		var e controlapi.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Type != controlapi.EventTask || !e.Replayed {
			t.Errorf("line %q: %+v %v", l, e, err)
		}
	}
	out = mustRun(t, "events", "--since", "87600h", "--until", "500ms", "--filter", "type=task")
	if !strings.Contains(out, " task update shop_web.2 on ") || !strings.Contains(out, "failed (desired shutdown): task: non-zero exit (1) [since]") {
		t.Errorf("events:\n%s", out)
	}
	mustFail(t, `filter "kind=task": want type=`, "events", "--filter", "kind=task")
}
