package reconcile

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/robfig/cron/v3"
)

// Kinds of sync windows.
const (
	WindowAllow = "allow"
	WindowDeny  = "deny"
)

// cronParser accepts standard five-field specs, descriptors (@daily,
// @weekly…) and a CRON_TZ= or TZ= prefix.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseWindow parses "allow|deny CRON DURATION", for example
// "deny 0 22 * * 5 60h" (no automatic syncs from Friday 22:00 for 60
// hours) or "allow @daily 2h". Schedules are in UTC unless they start with
// CRON_TZ=<zone>.
func ParseWindow(s string) (api.SyncWindow, error) {
	f := strings.Fields(s)
	if len(f) < 3 {
		return api.SyncWindow{}, fmt.Errorf("sync window %q: want \"allow|deny CRON DURATION\", e.g. \"deny 0 22 * * 5 60h\"", s)
	}
	d, err := time.ParseDuration(f[len(f)-1])
	if err != nil {
		return api.SyncWindow{}, fmt.Errorf("sync window %q: duration %q: want a Go duration such as 2h or 90m", s, f[len(f)-1])
	}
	w := api.SyncWindow{Kind: f[0], Schedule: strings.Join(f[1:len(f)-1], " "), Duration: api.Duration(d)}
	if _, err := compileWindow(w); err != nil {
		return api.SyncWindow{}, fmt.Errorf("sync window %q: %w", s, err)
	}
	return w, nil
}

// FormatWindow prints a window the way ParseWindow reads it.
func FormatWindow(w api.SyncWindow) string {
	return fmt.Sprintf("%s %s %s", w.Kind, w.Schedule, w.Duration)
}

// Windows are compiled sync windows. The zero value has none: automatic
// syncs are always allowed.
type Windows struct {
	allow, deny []window
}

type window struct {
	sched cron.Schedule
	d     time.Duration
}

// CompileWindows checks and compiles windows; the error names each bad one.
func CompileWindows(ws []api.SyncWindow) (Windows, error) {
	var out Windows
	var errs []error
	for i, w := range ws {
		c, err := compileWindow(w)
		if err != nil {
			errs = append(errs, fmt.Errorf("sync window %d (%s): %w", i+1, FormatWindow(w), err))
			continue
		}
		if w.Kind == WindowAllow {
			out.allow = append(out.allow, c)
		} else {
			out.deny = append(out.deny, c)
		}
	}
	return out, errors.Join(errs...)
}

func compileWindow(w api.SyncWindow) (window, error) {
	if w.Kind != WindowAllow && w.Kind != WindowDeny {
		return window{}, fmt.Errorf("kind %q: must be %q or %q", w.Kind, WindowAllow, WindowDeny)
	}
	if w.Duration <= 0 {
		return window{}, fmt.Errorf("duration %s: must be positive", w.Duration)
	}
	spec := strings.TrimSpace(w.Schedule)
	if strings.HasPrefix(spec, "@every") {
		return window{}, errors.New("schedule @every: a window needs fixed start times, not an interval")
	}
	if tz := strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ="); !tz {
		spec = "CRON_TZ=UTC " + spec
	} else if !strings.Contains(spec, " ") {
		return window{}, fmt.Errorf("schedule %q: a time zone needs a schedule after it", w.Schedule)
	}
	s, err := cronParser.Parse(spec)
	if err != nil {
		return window{}, fmt.Errorf("schedule %q: %w", w.Schedule, err)
	}
	return window{sched: s, d: w.Duration.Std()}, nil
}

// Empty reports whether there are no windows.
func (ws Windows) Empty() bool { return len(ws.allow) == 0 && len(ws.deny) == 0 }

// activeUntil returns the end of w's occurrence that covers t, or zero
// when none does. An occurrence that starts at f covers [f, f+d).
func (w window) activeUntil(t time.Time) time.Time {
	f := w.sched.Next(t.Add(-w.d)) // the first start strictly after t-d
	if f.IsZero() || f.After(t) {
		return time.Time{}
	}
	return f.Add(w.d)
}

// Open reports whether automatic syncs may run at t. When they may not,
// next is when they may next run, or zero when no window will ever let
// them (within the five years cron looks ahead).
func (ws Windows) Open(t time.Time) (open bool, next time.Time) {
	at := t
	// Closed stretches can chain (a deny window ending inside another,
	// or outside every allow window): follow them a bounded number of
	// times.
	for range 128 {
		until, blocked := ws.blockedAt(at)
		if !blocked {
			if at.Equal(t) {
				return true, time.Time{}
			}
			return false, at
		}
		if until.IsZero() {
			return false, time.Time{}
		}
		at = until
	}
	return false, time.Time{}
}

// blockedAt reports whether automatic syncs are refused at t and, if so,
// the first time at which that reason ends (zero: never).
func (ws Windows) blockedAt(t time.Time) (time.Time, bool) {
	var end time.Time
	for _, w := range ws.deny {
		if u := w.activeUntil(t); !u.IsZero() && u.After(end) {
			end = u
		}
	}
	if !end.IsZero() {
		return end, true
	}
	if len(ws.allow) == 0 {
		return time.Time{}, false
	}
	var next time.Time
	for _, w := range ws.allow {
		if !w.activeUntil(t).IsZero() {
			return time.Time{}, false
		}
		if n := w.sched.Next(t); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return next, true
}
