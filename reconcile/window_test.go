package reconcile

import (
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

func mustWindows(t *testing.T, specs ...string) Windows {
	t.Helper()
	var ws []api.SyncWindow
	for _, s := range specs {
		w, err := ParseWindow(s)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	c, err := CompileWindows(ws)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// at is a fixed time in March 2026 (the 2nd is a Monday, the 6th a Friday).
func at(day, hour, min int) time.Time { return time.Date(2026, 3, day, hour, min, 0, 0, time.UTC) }

func TestWindowsOpen(t *testing.T) {
	never := time.Time{}
	for _, tc := range []struct {
		name    string
		windows []string
		t       time.Time
		open    bool
		next    time.Time
	}{
		{"no windows", nil, at(2, 3, 0), true, never},
		{"allow: inside", []string{"allow 0 22 * * * 2h"}, at(2, 23, 0), true, never},
		{"allow: at its start", []string{"allow 0 22 * * * 2h"}, at(2, 22, 0), true, never},
		{"allow: at its end is outside", []string{"allow 0 22 * * * 2h"}, at(3, 0, 0), false, at(3, 22, 0)},
		{"allow: before", []string{"allow 0 22 * * * 2h"}, at(2, 12, 0), false, at(2, 22, 0)},
		{"allow: across midnight", []string{"allow 0 23 * * * 3h"}, at(3, 1, 59), true, never},
		{"allow: the earliest of two", []string{"allow 0 22 * * * 1h", "allow 30 13 * * * 1h"}, at(2, 12, 0), false, at(2, 13, 30)},
		{"deny: inside", []string{"deny 0 22 * * 5 60h"}, at(7, 12, 0), false, at(9, 10, 0)},
		{"deny: before", []string{"deny 0 22 * * 5 60h"}, at(6, 21, 59), true, never},
		{"deny: after", []string{"deny 0 22 * * 5 60h"}, at(9, 10, 0), true, never},
		{"deny wins over allow", []string{"allow 0 0 * * * 24h", "deny 0 12 * * * 1h"}, at(2, 12, 30), false, at(2, 13, 0)},
		{"deny chained into another", []string{"deny 0 12 * * * 1h", "deny 30 12 * * * 1h"}, at(2, 12, 10), false, at(2, 13, 30)},
		{"deny ends outside every allow", []string{"allow 0 8 * * * 4h", "deny 0 11 * * * 2h"}, at(2, 11, 30), false, at(3, 8, 0)},
		{"descriptor", []string{"allow @daily 1h"}, at(2, 0, 30), true, never},
		{"time zone", []string{"allow CRON_TZ=Europe/Paris 0 9 * * * 1h"}, at(2, 8, 30), true, never},                // 09:30 in Paris (UTC+1 in March)
		{"time zone outside", []string{"allow CRON_TZ=Europe/Paris 0 9 * * * 1h"}, at(2, 9, 30), false, at(3, 8, 0)}, // 10:30 in Paris
		{"deny always", []string{"deny * * * * * 1m"}, at(2, 9, 30), false, never},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := mustWindows(t, tc.windows...)
			open, next := ws.Open(tc.t)
			if open != tc.open || !next.Equal(tc.next) {
				t.Errorf("Open(%s) = %v, %s; want %v, %s", tc.t.Format(time.DateTime), open, next.Format(time.DateTime), tc.open, tc.next.Format(time.DateTime))
			}
		})
	}
}

func TestParseWindow(t *testing.T) {
	w, err := ParseWindow("deny 0 22 * * 5 60h")
	if err != nil || w != (api.SyncWindow{Kind: "deny", Schedule: "0 22 * * 5", Duration: api.Duration(60 * time.Hour)}) {
		t.Fatalf("ParseWindow = %+v, %v", w, err)
	}
	if got := FormatWindow(w); got != "deny 0 22 * * 5 60h0m0s" {
		t.Errorf("FormatWindow = %q", got)
	}
	for _, tc := range []struct{ in, want string }{
		{"deny 1h", `want "allow|deny CRON DURATION"`},
		{"maybe 0 22 * * * 1h", `kind "maybe": must be "allow" or "deny"`},
		{"allow 0 22 * * * soon", `duration "soon"`},
		{"allow 0 22 * * * -1h", "duration -1h0m0s: must be positive"},
		{"allow 0 25 * * * 1h", `schedule "0 25 * * *"`},
		{"allow 0 22 * * 1h", `schedule "0 22 * *"`},
		{"allow @every 5m 1h", "a window needs fixed start times"},
		{"allow CRON_TZ=Mars/Olympus 0 9 * * * 1h", "Mars/Olympus"},
	} {
		_, err := ParseWindow(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseWindow(%q) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
	_, err = CompileWindows([]api.SyncWindow{{Kind: "allow", Schedule: "@daily", Duration: api.Duration(time.Hour)}, {Kind: "x", Schedule: "@daily", Duration: 1}})
	if err == nil || !strings.Contains(err.Error(), "sync window 2 (x @daily 1ns)") {
		t.Errorf("CompileWindows error %v does not name the second window", err)
	}
}
