package webhook

import (
	"context"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manual clock; created announces every NewTimer.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	created chan time.Duration
}

type fakeTimer struct {
	at      time.Time
	c       chan time.Time
	stopped bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (t *fakeTimer) Stop() bool          { t.stopped = true; return true }

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), created: make(chan time.Duration, 100)}
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	t := &fakeTimer{at: c.now.Add(d), c: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	c.created <- d
	return t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !t.stopped && !t.at.After(c.now) {
			t.c <- c.now
			continue
		}
		kept = append(kept, t)
	}
	c.timers = kept
}

// waitTimer waits until Run arms a timer and returns its duration.
func (c *fakeClock) waitTimer(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.created:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no timer armed within 10s")
		return 0
	}
}

type syncRecorder struct{ bursts chan Burst }

func (s *syncRecorder) Sync(_ context.Context, b Burst) { s.bursts <- b }

func (s *syncRecorder) next(t *testing.T) Burst {
	t.Helper()
	select {
	case b := <-s.bursts:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("no sync within 10s")
		return Burst{}
	}
}

func push(commit string) Event {
	return Event{Provider: Generic, Kind: KindPush, Ref: "refs/heads/main", Commit: commit}
}

func TestCoalescer(t *testing.T) {
	clk := newFakeClock()
	rec := &syncRecorder{bursts: make(chan Burst, 10)}
	c, err := NewCoalescer(CoalescerConfig{Syncer: rec, Clock: clk, Delay: 100 * time.Millisecond, MinInterval: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()

	// A burst of five triggers becomes one sync with the latest event.
	start := clk.Now()
	for i := range 5 {
		if err := c.Trigger(ctx, push(string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	if d := clk.waitTimer(t); d != 100*time.Millisecond {
		t.Fatalf("first timer = %v, want the 100ms delay", d)
	}
	c.Trigger(ctx, push("f")) // joins the burst while the timer runs
	clk.Advance(100 * time.Millisecond)
	b := rec.next(t)
	if b.Count != 6 || b.Latest.Commit != "f" || !b.First.Equal(start) {
		t.Fatalf("burst = %+v, want 6 triggers ending with f", b)
	}

	// Triggers right after a sync wait for MinInterval since its start.
	c.Trigger(ctx, push("g"))
	c.Trigger(ctx, push("h"))
	if d := clk.waitTimer(t); d != 2*time.Second {
		t.Fatalf("second timer = %v, want the 2s min interval", d)
	}
	clk.Advance(2 * time.Second)
	if b := rec.next(t); b.Count != 2 || b.Latest.Commit != "h" {
		t.Fatalf("second burst = %+v, want 2 triggers ending with h", b)
	}
	if n := c.Pending(); n != 0 {
		t.Fatalf("pending = %d after sync", n)
	}

	// Long after, a lone trigger waits only the delay.
	clk.Advance(time.Minute)
	c.Trigger(ctx, push("i"))
	if d := clk.waitTimer(t); d != 100*time.Millisecond {
		t.Fatalf("third timer = %v, want the 100ms delay", d)
	}
	clk.Advance(100 * time.Millisecond)
	if b := rec.next(t); b.Count != 1 || b.Latest.Commit != "i" {
		t.Fatalf("third burst = %+v", b)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
}

// blockingSyncer holds each sync until released, to test triggers that
// arrive while a sync runs.
type blockingSyncer struct {
	started chan Burst
	release chan struct{}
}

func (s *blockingSyncer) Sync(_ context.Context, b Burst) {
	s.started <- b
	<-s.release
}

func TestCoalescerDuringSync(t *testing.T) {
	clk := newFakeClock()
	s := &blockingSyncer{started: make(chan Burst, 10), release: make(chan struct{})}
	c, err := NewCoalescer(CoalescerConfig{Syncer: s, Clock: clk, Delay: time.Millisecond, MinInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = c.Run(ctx) })

	c.Trigger(ctx, push("a"))
	clk.waitTimer(t)
	clk.Advance(time.Millisecond)
	if b := <-s.started; b.Latest.Commit != "a" {
		t.Fatalf("first sync = %+v", b)
	}
	for _, commit := range []string{"b", "c", "d"} {
		c.Trigger(ctx, push(commit)) // the sync is still running
	}
	if n := c.Pending(); n != 3 {
		t.Fatalf("pending during sync = %d, want 3", n)
	}
	s.release <- struct{}{}
	clk.waitTimer(t)
	clk.Advance(time.Millisecond)
	if b := <-s.started; b.Count != 3 || b.Latest.Commit != "d" {
		t.Fatalf("follow-up sync = %+v, want one sync for b, c, d", b)
	}
	cancel()
	s.release <- struct{}{}
	wg.Wait()
}
