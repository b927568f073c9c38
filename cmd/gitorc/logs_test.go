package main

import (
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

func TestLogsLineFormat(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	l := api.LogLine{Time: at, Service: "web", Slot: 1, Node: "n2", Line: "hello"}
	if got := formatLogLine(l, false); got != "web.1@n2 | hello" {
		t.Errorf("got %q", got)
	}
	if got := formatLogLine(l, true); got != "2030-01-02T03:04:05Z web.1@n2 | hello" {
		t.Errorf("-t: got %q", got)
	}
	if got, err := parseSince("10m", at); err != nil || !got.Equal(at.Add(-10*time.Minute)) {
		t.Errorf("since 10m = %v, %v", got, err)
	}
	if got, err := parseSince("2030-01-01T00:00:00Z", at); err != nil || !got.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("since RFC 3339 = %v, %v", got, err)
	}
	if _, err := parseSince("yesterday", at); err == nil {
		t.Error("since yesterday accepted")
	}
}
