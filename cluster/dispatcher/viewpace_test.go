package dispatcher

import (
	"testing"
	"time"
)

// Views are paced only when all sessions' views would take more than the
// budget: a few sessions never wait; many wait what keeps them within it,
// up to the bound.
func TestViewPaceInterval(t *testing.T) {
	var p viewPace
	if got := p.interval(1000); got != 0 {
		t.Errorf("no view measured yet: interval %s, want 0", got)
	}
	p.observe(time.Millisecond)
	for _, tc := range []struct {
		sessions int
		want     time.Duration
	}{
		{3, 0},                  // 12 ms: below minViewInterval
		{1000, 4 * time.Second}, // 1 ms × 1,000 / 0.25
		{5000, maxViewInterval}, // 20 s: bounded
	} {
		if got := p.interval(tc.sessions); got != tc.want {
			t.Errorf("%d sessions at 1 ms a view: interval %s, want %s", tc.sessions, got, tc.want)
		}
	}
	for range 100 {
		p.observe(100 * time.Microsecond)
	}
	if got := p.interval(1000); got >= time.Second {
		t.Errorf("views that became cheaper: interval %s, want it to follow them down", got)
	}
}
