package webhook

import (
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// What a listener spends on deliveries it has not verified is bounded:
// a missing or malformed signature header is refused before the body is
// read (CheckHeader), a body is read up to MaxBody, at most MaxInFlight
// deliveries are served at once, every field an answer carries is cut to
// MaxFieldBytes, and refusals are logged at most once a second per cause.
const (
	// DefaultMaxBody is a push's payload cap: GitHub's pushes are capped
	// at 25 MB, but the fields gitorc reads come first and a push of a
	// few thousand commits stays well below 1 MiB.
	DefaultMaxBody = 1 << 20
	// DefaultMaxInFlight is how many deliveries are served at once;
	// beyond it a delivery is answered 503 at once (Retry-After), so
	// memory stays under MaxInFlight × MaxBody whatever senders do.
	DefaultMaxInFlight = 8
	// MaxFieldBytes bounds each field of a Response (and so of what
	// OnDelivery keeps).
	MaxFieldBytes = 512
	// DefaultReplayWindow is how long a delivery ID is remembered.
	DefaultReplayWindow = 24 * time.Hour
	// maxRemembered bounds the delivery IDs remembered; the oldest go first.
	maxRemembered = 4096
	// logEvery is the least time between two log lines of one cause.
	logEvery = time.Second
)

// Truncate cuts s to at most max bytes, on a rune boundary, marking the
// cut with "…".
func Truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const mark = "…"
	cut := max - len(mark)
	if cut < 0 {
		return s[:max]
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// bounded returns r with every field cut to MaxFieldBytes.
func (r Response) bounded() Response {
	for _, f := range []*string{&r.Action, &r.Message, &r.Provider, &r.Event, &r.Ref, &r.Commit, &r.Delivery} {
		*f = Truncate(*f, MaxFieldBytes)
	}
	return r
}

// replays remembers the IDs of deliveries acted on, for window, at most
// maxRemembered of them.
type replays struct {
	window time.Duration

	mu    sync.Mutex
	seen  map[string]time.Time // key → when it was received
	order []received           // as received, oldest first
}

type received struct {
	key string
	at  time.Time
}

// reserve records key as received at now; if it was already, within the
// window, it returns when and false.
func (r *replays) reserve(key string, now time.Time) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]time.Time{}
	}
	// Forget what left the window or overflows, oldest first. An entry
	// whose key was forgotten, or received again since, is only dropped.
	for len(r.order) > 0 && (now.Sub(r.order[0].at) >= r.window || len(r.order) >= maxRemembered) {
		if e := r.order[0]; r.seen[e.key].Equal(e.at) {
			delete(r.seen, e.key)
		}
		r.order = r.order[1:]
	}
	if at, ok := r.seen[key]; ok {
		return at, false
	}
	r.seen[key] = now
	r.order = append(r.order, received{key, now})
	return now, true
}

// forget drops key: its delivery was not acted on, the sender may retry.
func (r *replays) forget(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.seen, key)
}

// logThrottle allows one log line per cause per logEvery and counts the
// lines it held back.
type logThrottle struct {
	mu    sync.Mutex
	cause map[string]*throttled
}

type throttled struct {
	last    time.Time
	dropped int
}

// allow reports whether a line of cause may be logged at now, and how
// many lines of that cause were dropped since the last one.
func (l *logThrottle) allow(cause string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cause == nil {
		l.cause = map[string]*throttled{}
	}
	c := l.cause[cause]
	if c == nil {
		c = &throttled{}
		l.cause[cause] = c
	} else if now.Sub(c.last) < logEvery {
		c.dropped++
		return false, 0
	}
	dropped := c.dropped
	c.last, c.dropped = now, 0
	return true, dropped
}

// causeOf is a refusal's log cause: its status and the provider's label,
// a bounded set whatever senders post.
func causeOf(status int, provider string) string {
	label := ProviderUnknown
	if p, err := ParseProvider(provider); err == nil {
		label = string(p)
	}
	return strconv.Itoa(status) + " " + label
}
