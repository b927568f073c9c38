package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// loopClock is a manual clock for the trigger loop: every After is
// announced on waits, and fires when Advance passes its deadline.
type loopClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []loopTimer
	waits  chan time.Duration
}

type loopTimer struct {
	at time.Time
	ch chan time.Time
}

func newLoopClock(t time.Time) *loopClock {
	return &loopClock{now: t, waits: make(chan time.Duration, 100)}
}

func (c *loopClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *loopClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, loopTimer{at: c.now.Add(d), ch: ch})
	c.mu.Unlock()
	c.waits <- d
	return ch
}

func (c *loopClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			t.ch <- c.now
			continue
		}
		kept = append(kept, t)
	}
	c.timers = kept
}

// memControl is an in-memory sync state with SyncControl. Its watch
// fires for writes made with set (another manager's, in the tests); the
// loop's own writes would only wake it for nothing.
type memControl struct {
	mu      sync.Mutex
	st      api.SyncState
	watch   chan struct{}
	records map[string]string // record ID → request ID, as the store marks them
}

func newMemControl(st api.SyncState) *memControl {
	return &memControl{st: st, watch: make(chan struct{}, 1), records: map[string]string{}}
}

func cloneSync(s api.SyncState) api.SyncState {
	s.Requests = slices.Clone(s.Requests)
	s.Deliveries = slices.Clone(s.Deliveries)
	s.Source.Windows = slices.Clone(s.Source.Windows)
	return s
}

func (m *memControl) Sync(context.Context) (api.SyncState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return cloneSync(m.st), nil
}

func (m *memControl) UpdateSync(_ context.Context, fn func(*api.SyncState) error) (api.SyncState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := cloneSync(m.st)
	if err := fn(&s); errors.Is(err, ErrUnchanged) {
		return cloneSync(m.st), nil
	} else if err != nil {
		return api.SyncState{}, err
	}
	for _, r := range s.Requests {
		if r.Record != "" {
			m.records[r.Record] = r.ID
		}
	}
	m.st = s
	return cloneSync(s), nil
}

func (m *memControl) WatchSync(context.Context) (<-chan struct{}, error) { return m.watch, nil }

// set changes the state as another manager would.
func (m *memControl) set(fn func(*api.SyncState)) {
	m.mu.Lock()
	fn(&m.st)
	m.mu.Unlock()
	select {
	case m.watch <- struct{}{}:
	default:
	}
}

func (m *memControl) state() api.SyncState { s, _ := m.Sync(context.Background()); return s }

// fakeSyncs stands for Controller.Sync: each call is announced on calls
// and, when hold is set, waits for release.
type fakeSyncs struct {
	mu      sync.Mutex
	hold    bool
	n       int
	calls   chan api.SyncTrigger
	release chan struct{}
}

func (f *fakeSyncs) sync(ctx context.Context, tr api.SyncTrigger) (api.SyncRecord, error) {
	f.mu.Lock()
	f.n++
	n, hold := f.n, f.hold
	f.mu.Unlock()
	f.calls <- tr
	if hold {
		select {
		case <-f.release:
		case <-ctx.Done():
			return api.SyncRecord{}, ctx.Err()
		}
	}
	return api.SyncRecord{Meta: api.Meta{ID: fmt.Sprintf("rec-%d", n)}, Trigger: tr, Result: api.SyncSynced,
		Message: fmt.Sprintf("revision %d synced", n)}, nil
}

type loopHarness struct {
	t       *testing.T
	clock   *loopClock
	ctl     *memControl
	syncs   *fakeSyncs
	changes chan struct{}
	cancel  context.CancelFunc
	done    chan error

	mu     sync.Mutex
	unseen map[string]bool // commits the source does not hold
}

func (h *loopHarness) has(commit string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.unseen[commit]
}

func (h *loopHarness) setUnseen(commit string, unseen bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.unseen[commit] = unseen
}

// startLoop runs a trigger loop over st with a 60s poll interval (unless
// st says otherwise) and rand() values taken in turn from rnd (0.5, no
// jitter, when empty).
func startLoop(t *testing.T, now time.Time, st api.SyncState, rnd ...float64) *loopHarness {
	t.Helper()
	h := &loopHarness{t: t, clock: newLoopClock(now), ctl: newMemControl(st),
		syncs:   &fakeSyncs{calls: make(chan api.SyncTrigger, 10), release: make(chan struct{})},
		changes: make(chan struct{}, 1), done: make(chan error, 1), unseen: map[string]bool{}}
	var mu sync.Mutex
	r := func() float64 {
		mu.Lock()
		defer mu.Unlock()
		if len(rnd) == 0 {
			return 0.5
		}
		v := rnd[0]
		rnd = rnd[1:]
		return v
	}
	l := &triggerLoop{sync: h.syncs.sync, state: h.ctl, ctl: h.ctl, clock: h.clock, log: slog.New(slog.DiscardHandler),
		poll: time.Minute, cfg: TriggerConfig{Changes: h.changes, Rand: r, Node: "m1"}.withDefaults(), has: h.has}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- l.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		close(h.syncs.release)
		<-h.done
	})
	return h
}

// idle waits until the loop sleeps and returns for how long.
func (h *loopHarness) idle() time.Duration {
	h.t.Helper()
	select {
	case d := <-h.clock.waits:
		return d
	case <-time.After(10 * time.Second):
		h.t.Fatal("the loop never went to sleep")
		return 0
	}
}

// synced waits for the next sync and returns its trigger.
func (h *loopHarness) synced() api.SyncTrigger {
	h.t.Helper()
	select {
	case tr := <-h.syncs.calls:
		return tr
	case <-time.After(10 * time.Second):
		h.t.Fatal("no sync started")
		return 0
	}
}

// noSyncYet checks that no sync has started so far.
func (h *loopHarness) noSyncYet() {
	h.t.Helper()
	select {
	case tr := <-h.syncs.calls:
		h.t.Fatalf("unexpected %s sync", tr)
	default:
	}
}

// webhookSynced queues a webhook request naming rev, as another manager
// would, and waits for the sync it starts after the debounce.
func (h *loopHarness) webhookSynced(id, rev string) {
	h.t.Helper()
	h.ctl.set(func(s *api.SyncState) {
		r := request(id, api.TriggerWebhook)
		r.Revision = rev
		QueueRequest(s, r)
	})
	h.idle()
	h.clock.Advance(DefaultDebounce)
	if tr := h.synced(); tr != api.TriggerWebhook {
		h.t.Fatalf("sync %s, want webhook", tr)
	}
}

func request(id string, tr api.SyncTrigger) api.SyncRequest {
	return api.SyncRequest{ID: id, Trigger: tr, At: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
}

var monday9 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC) // a Monday

func TestTriggerPollsWithJitter(t *testing.T) {
	h := startLoop(t, monday9, api.SyncState{Source: api.SourceSpec{URL: "/repo", Interval: api.Duration(100 * time.Second)}}, 0, 0.5, 0.75)
	if tr := h.synced(); tr != api.TriggerPoll {
		t.Fatalf("first sync %s, want an immediate poll", tr)
	}
	for _, want := range []time.Duration{90 * time.Second, 100 * time.Second, 105 * time.Second} {
		d := h.idle()
		if d != want {
			t.Fatalf("poll in %s, want %s (interval 100s, jitter ±10%%)", d, want)
		}
		h.clock.Advance(d - time.Second)
		h.noSyncYet()
		h.clock.Advance(time.Second)
		if tr := h.synced(); tr != api.TriggerPoll {
			t.Fatalf("sync %s, want poll", tr)
		}
	}
	// A new interval takes effect without a restart.
	h.idle()
	h.ctl.set(func(s *api.SyncState) { s.Source.Interval = api.Duration(10 * time.Second) })
	if d := h.idle(); d != 10*time.Second {
		t.Fatalf("after the interval changed: poll in %s, want 10s", d)
	}
}

func TestTriggerRequestsCoalesce(t *testing.T) {
	h := startLoop(t, monday9, api.SyncState{Source: api.SourceSpec{URL: "/repo"}, Phase: api.SyncSynced})
	h.synced()
	h.idle()

	// Three deliveries of a burst fold into one request and one sync,
	// after the debounce.
	h.ctl.set(func(s *api.SyncState) {
		for i, c := range []string{"aaaaaaa1", "aaaaaaa2", "aaaaaaa3"} {
			r := request(fmt.Sprintf("w%d", i), api.TriggerWebhook)
			r.Revision = c
			QueueRequest(s, r)
		}
	})
	if d := h.idle(); d != DefaultDebounce {
		t.Fatalf("webhook request waits %s, want the %s debounce", d, DefaultDebounce)
	}
	h.noSyncYet()
	h.clock.Advance(DefaultDebounce)
	if tr := h.synced(); tr != api.TriggerWebhook {
		t.Fatalf("sync %s, want webhook", tr)
	}
	h.idle()
	st := h.ctl.state()
	if len(st.Requests) != 1 {
		t.Fatalf("requests %+v, want the burst as one", st.Requests)
	}
	r := st.Requests[0]
	if r.ID != "w0" || r.Count != 3 || r.Revision != "aaaaaaa3" || !r.Done() || r.Node != "m1" ||
		r.Result != api.SyncSynced || r.Record != "rec-2" || r.Message != "revision 2 synced" {
		t.Errorf("request %+v", r)
	}
	if h.ctl.records["rec-2"] != "w0" {
		t.Errorf("record rec-2 not marked with its request: %v", h.ctl.records)
	}

	// A manual request syncs at once; requests that arrive during that
	// sync are served together by the next one.
	h.syncs.mu.Lock()
	h.syncs.hold = true
	h.syncs.mu.Unlock()
	h.ctl.set(func(s *api.SyncState) { QueueRequest(s, request("m1", api.TriggerManual)) })
	if tr := h.synced(); tr != api.TriggerManual {
		t.Fatalf("sync %s, want manual", tr)
	}
	h.ctl.set(func(s *api.SyncState) {
		QueueRequest(s, request("w9", api.TriggerWebhook))
		QueueRequest(s, request("m2", api.TriggerManual))
		QueueRequest(s, request("m3", api.TriggerManual)) // folds into m2
	})
	h.syncs.release <- struct{}{}
	if tr := h.synced(); tr != api.TriggerManual {
		t.Fatalf("second sync %s, want manual", tr)
	}
	h.syncs.release <- struct{}{}
	h.idle()
	st = h.ctl.state()
	got := map[string]string{}
	for _, r := range st.Requests {
		got[r.ID] = fmt.Sprintf("%s count=%d done=%v", r.Record, r.Count, r.Done())
	}
	want := map[string]string{"w0": "rec-2 count=3 done=true", "m1": "rec-3 count=1 done=true",
		"w9": "rec-4 count=1 done=true", "m2": "rec-4 count=2 done=true"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("requests:\n got %v\nwant %v", got, want)
	}
}

// A webhook that names a commit the source does not show yet (the Git
// server announced the push before serving it) is fetched again 1 s, 2 s,
// 4 s and 8 s later, until the commit shows; then it is answered.
func TestTriggerWebhookCommitNotServedYet(t *testing.T) {
	h := startLoop(t, monday9, api.SyncState{Source: api.SourceSpec{URL: "/repo"}, Phase: api.SyncSynced})
	h.synced()
	h.idle()
	h.setUnseen("bbbbbbb1", true)
	h.webhookSynced("w1", "bbbbbbb1")
	for attempt, wait := range []time.Duration{time.Second, 2 * time.Second} {
		if d := h.idle(); d != wait {
			t.Fatalf("attempt %d: the loop sleeps %s, want %s until the next fetch", attempt+1, d, wait)
		}
		r, _ := FindRequest(h.ctl.state(), "w1")
		if !r.Pending() || r.Attempts != attempt+1 || !r.RetryAt.Equal(h.clock.Now().Add(wait)) ||
			!strings.Contains(r.Message, fmt.Sprintf("does not show bbbbbbb yet (fetch %d of 5)", attempt+1)) {
			t.Fatalf("attempt %d: request %+v", attempt+1, r)
		}
		h.noSyncYet()
		if attempt == 1 {
			h.setUnseen("bbbbbbb1", false) // served by the third fetch
		}
		h.clock.Advance(wait)
		h.idle() // the debounce
		h.clock.Advance(DefaultDebounce)
		if tr := h.synced(); tr != api.TriggerWebhook {
			t.Fatalf("sync %s, want webhook", tr)
		}
	}
	h.idle()
	r, _ := FindRequest(h.ctl.state(), "w1")
	if !r.Done() || r.Attempts != 2 || r.Message != "revision 4 synced" {
		t.Errorf("request %+v, want done by the third sync", r)
	}

	// A commit that never shows: five fetches, then the answer says so.
	h.setUnseen("ccccccc1", true)
	h.webhookSynced("w2", "ccccccc1")
	for _, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		if d := h.idle(); d != wait {
			t.Fatalf("the loop sleeps %s, want %s", d, wait)
		}
		h.clock.Advance(wait)
		h.idle()
		h.clock.Advance(DefaultDebounce)
		h.synced()
	}
	if d := h.idle(); d < 30*time.Second {
		t.Fatalf("the loop sleeps %s after the last fetch, want the poll interval", d)
	}
	r, _ = FindRequest(h.ctl.state(), "w2")
	if !r.Done() || r.Attempts != 5 || !strings.Contains(r.Message, "the webhook named ccccccc, which the source did not show after 5 fetches") {
		t.Errorf("request %+v", r)
	}

	// A new delivery while a request waits runs after the debounce, not at
	// the wait's end.
	h.setUnseen("ddddddd1", true)
	h.webhookSynced("w3", "ddddddd1")
	if d := h.idle(); d != time.Second {
		t.Fatalf("the loop sleeps %s, want 1s", d)
	}
	h.ctl.set(func(s *api.SyncState) {
		r := request("w4", api.TriggerWebhook)
		r.Revision = "eeeeeee1"
		QueueRequest(s, r)
	})
	if d := h.idle(); d != DefaultDebounce {
		t.Fatalf("after a new delivery the loop sleeps %s, want the debounce", d)
	}
	h.clock.Advance(DefaultDebounce)
	h.synced()
	h.idle()
	r, _ = FindRequest(h.ctl.state(), "w3")
	if !r.Done() || r.Revision != "eeeeeee1" || r.Attempts != 0 || r.Count != 2 {
		t.Errorf("request %+v, want the second delivery folded in and served", r)
	}
}

func TestTriggerSuspended(t *testing.T) {
	h := startLoop(t, monday9, api.SyncState{Source: api.SourceSpec{URL: "/repo"}, Suspended: true, Phase: api.SyncSynced})
	if d := h.idle(); d != resync {
		t.Fatalf("suspended: sleeps %s, want %s (until the state changes)", d, resync)
	}
	h.noSyncYet()

	// A webhook while suspended is answered without a sync; a local change
	// waits; a manual sync runs.
	h.ctl.set(func(s *api.SyncState) { QueueRequest(s, request("w1", api.TriggerWebhook)) })
	h.idle()
	h.changes <- struct{}{}
	h.idle()
	h.noSyncYet()
	if r, _ := FindRequest(h.ctl.state(), "w1"); !r.Done() || r.Result != api.SyncSuspended || !strings.Contains(r.Message, "suspended") {
		t.Errorf("webhook request while suspended: %+v", r)
	}
	h.ctl.set(func(s *api.SyncState) { QueueRequest(s, request("m1", api.TriggerManual)) })
	if tr := h.synced(); tr != api.TriggerManual {
		t.Fatalf("sync %s, want manual", tr)
	}
	h.idle()
	if r, _ := FindRequest(h.ctl.state(), "m1"); r.Result != api.SyncSynced {
		t.Errorf("manual request: %+v", r)
	}

	// Resumed: polls again, a minute after the manual sync (which also
	// covered the local change).
	h.ctl.set(func(s *api.SyncState) { s.Suspended = false })
	if d := h.idle(); d != time.Minute {
		t.Fatalf("after resume: sleeps %s, want 1m", d)
	}
	h.noSyncYet()
	h.clock.Advance(time.Minute)
	if tr := h.synced(); tr != api.TriggerPoll {
		t.Fatalf("after resume: %s sync, want poll", tr)
	}
}

func TestTriggerSyncWindows(t *testing.T) {
	deny := api.SyncWindow{Kind: WindowDeny, Schedule: "0 12 * * *", Duration: api.Duration(time.Hour)}
	start := time.Date(2026, 3, 2, 12, 10, 0, 0, time.UTC)
	h := startLoop(t, start, api.SyncState{Source: api.SourceSpec{URL: "/repo", Windows: []api.SyncWindow{deny}}})
	if d := h.idle(); d != 50*time.Minute {
		t.Fatalf("inside a deny window: sleeps %s, want 50m (until 13:00)", d)
	}
	h.noSyncYet()
	h.ctl.set(func(s *api.SyncState) { QueueRequest(s, request("w1", api.TriggerWebhook)) })
	if d := h.idle(); d != 50*time.Minute {
		t.Fatalf("webhook inside a deny window: sleeps %s, want 50m", d)
	}
	h.noSyncYet()
	if r, _ := FindRequest(h.ctl.state(), "w1"); !r.Pending() {
		t.Errorf("webhook request inside a deny window is not pending: %+v", r)
	}
	// Manual syncs are always allowed; the webhook request rides along.
	h.ctl.set(func(s *api.SyncState) { QueueRequest(s, request("m1", api.TriggerManual)) })
	if tr := h.synced(); tr != api.TriggerManual {
		t.Fatalf("sync %s, want manual", tr)
	}
	if d := h.idle(); d != 50*time.Minute {
		t.Fatalf("after the manual sync: sleeps %s, want 50m", d)
	}
	// The window closes: the poll runs.
	h.clock.Advance(50 * time.Minute)
	if tr := h.synced(); tr != api.TriggerPoll {
		t.Fatalf("at 13:00: %s sync, want poll", tr)
	}
}

func TestTriggerLocalChangesDebounced(t *testing.T) {
	h := startLoop(t, monday9, api.SyncState{Source: api.SourceSpec{URL: "/repo"}})
	h.synced()
	h.idle()
	h.changes <- struct{}{}
	if d := h.idle(); d != DefaultDebounce {
		t.Fatalf("change waits %s, want %s", d, DefaultDebounce)
	}
	h.clock.Advance(DefaultDebounce / 2)
	h.changes <- struct{}{} // folds into the first
	if d := h.idle(); d != DefaultDebounce/2 {
		t.Fatalf("second change waits %s, want the rest of the first's debounce", d)
	}
	h.clock.Advance(DefaultDebounce / 2)
	if tr := h.synced(); tr != api.TriggerWatch {
		t.Fatalf("sync %s, want watch", tr)
	}
	if d := h.idle(); d != time.Minute {
		t.Fatalf("after the watch sync: next poll in %s, want 1m", d)
	}
	h.noSyncYet()
}

func TestTriggerTakesOverUnfinishedRequests(t *testing.T) {
	started := request("m1", api.TriggerManual)
	started.StartedAt, started.Node = monday9.Add(-time.Minute), "dead-leader"
	h := startLoop(t, monday9, api.SyncState{Source: api.SourceSpec{URL: "/repo"}, Requests: []api.SyncRequest{started}})
	if tr := h.synced(); tr != api.TriggerManual {
		t.Fatalf("first sync %s, want the manual request a dead leader left", tr)
	}
	h.idle()
	if r, _ := FindRequest(h.ctl.state(), "m1"); !r.Done() || r.Node != "m1" || r.Record != "rec-1" {
		t.Errorf("request %+v", r)
	}
}

func TestTriggerSourceChanged(t *testing.T) {
	h := startLoop(t, monday9, api.SyncState{Source: api.SourceSpec{URL: "/repo", Ref: "main"}})
	h.synced()
	h.idle()
	h.ctl.set(func(s *api.SyncState) { s.Source.Ref = "release" })
	select {
	case err := <-h.done:
		if !errors.Is(err, ErrSourceChanged) {
			t.Fatalf("run = %v, want ErrSourceChanged", err)
		}
		h.done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not stop on a source change")
	}
}

func TestQueueRequestAndTrim(t *testing.T) {
	var st api.SyncState
	a := QueueRequest(&st, request("a", api.TriggerWebhook))
	b := QueueRequest(&st, api.SyncRequest{ID: "b", Trigger: api.TriggerWebhook, Revision: "c0ffee", Count: 2})
	if a.ID != "a" || b.ID != "a" || b.Count != 3 || b.Revision != "c0ffee" || len(st.Requests) != 1 {
		t.Fatalf("folded: %+v %+v %+v", a, b, st.Requests)
	}
	if m := QueueRequest(&st, request("m", api.TriggerManual)); m.ID != "m" || len(st.Requests) != 2 {
		t.Fatalf("a manual request joined a webhook one: %+v", st.Requests)
	}
	st.Requests[0].StartedAt = monday9
	if c := QueueRequest(&st, request("c", api.TriggerWebhook)); c.ID != "c" {
		t.Fatalf("a request joined one already started: %+v", c)
	}
	// Finished requests are trimmed to the last ten; unfinished ones stay.
	st = api.SyncState{}
	for i := range 15 {
		r := request(fmt.Sprint(i), api.TriggerManual)
		r.StartedAt, r.FinishedAt = monday9, monday9
		st.Requests = append(st.Requests, r)
	}
	QueueRequest(&st, request("new", api.TriggerManual))
	if len(st.Requests) != 11 || st.Requests[0].ID != "5" || st.Requests[10].ID != "new" {
		var ids []string
		for _, r := range st.Requests {
			ids = append(ids, r.ID)
		}
		t.Errorf("kept %v", ids)
	}
	for i := range 12 {
		AddDelivery(&st, api.WebhookDelivery{Status: i})
	}
	if len(st.Deliveries) != 10 || st.Deliveries[0].Status != 2 {
		t.Errorf("deliveries %+v", st.Deliveries)
	}
}

func TestOutcome(t *testing.T) {
	synced := api.SyncState{Phase: api.SyncSynced, Revision: "0123456789", Message: "revision 0123456 synced: 2 service(s) rolled out healthy"}
	for _, tc := range []struct {
		name    string
		trigger api.SyncTrigger
		rec     api.SyncRecord
		err     error
		st      api.SyncState
		result  api.SyncPhase
		msg     string
	}{
		{"applied", api.TriggerManual, api.SyncRecord{Meta: api.Meta{ID: "r"}, Result: api.SyncDegraded, Message: "revision x degraded"}, nil, synced,
			api.SyncDegraded, "revision x degraded"},
		{"applied then lost", api.TriggerManual, api.SyncRecord{Meta: api.Meta{ID: "r"}, Revision: "abcdef0123", Result: api.SyncProgressing}, errors.New("observe: boom"), synced,
			api.SyncFailed, "revision abcdef0: observe: boom"},
		{"fetch failed", api.TriggerWebhook, api.SyncRecord{}, errors.New("fetch: no route"), synced,
			api.SyncFailed, "sync failed: fetch: no route"},
		{"nothing new", api.TriggerManual, api.SyncRecord{}, nil, synced,
			api.SyncSynced, "nothing new to apply: revision 0123456 synced: 2 service(s) rolled out healthy"},
		{"suspended webhook", api.TriggerWebhook, api.SyncRecord{}, nil, api.SyncState{Suspended: true},
			api.SyncSuspended, "not run: automatic syncs are suspended"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			result, msg := outcome(tc.trigger, tc.rec, tc.err, tc.st)
			if result != tc.result || msg != tc.msg {
				t.Errorf("outcome = %s %q, want %s %q", result, msg, tc.result, tc.msg)
			}
		})
	}
}
