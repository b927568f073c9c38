package webhook

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Clock is the time source of the Coalescer; tests inject a fake one.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once after d.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer from a Clock.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// RealClock is the wall clock.
type RealClock struct{}

func (RealClock) Now() time.Time { return time.Now() }

func (RealClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// Burst is a group of triggers that became one sync.
type Burst struct {
	// Latest is the last event received; its commit is the newest known.
	Latest Event
	// Count is how many triggers were folded into this sync.
	Count int
	// First and Last are when the first and last trigger arrived.
	First, Last time.Time
}

// Syncer runs one sync for a burst of triggers. Sync may take long; the
// triggers that arrive meanwhile become the next burst.
type Syncer interface {
	Sync(ctx context.Context, b Burst)
}

// CoalescerConfig configures a Coalescer.
type CoalescerConfig struct {
	// Syncer is called once per burst. Required.
	Syncer Syncer
	// Delay is how long the first trigger of a burst waits for others
	// before the sync starts (default 100ms; a push often fires several
	// hooks at once).
	Delay time.Duration
	// MinInterval is the least time between the starts of two syncs
	// (default 1s); triggers in between wait for the next one.
	MinInterval time.Duration
	// Clock defaults to RealClock.
	Clock Clock
}

// Default coalescing times.
const (
	DefaultDelay       = 100 * time.Millisecond
	DefaultMinInterval = time.Second
)

// Validate reports what is wrong with the configuration.
func (c CoalescerConfig) Validate() error {
	var errs []error
	if c.Syncer == nil {
		errs = append(errs, errors.New("syncer is nil"))
	}
	if c.Delay < 0 || c.MinInterval < 0 {
		errs = append(errs, errors.New("delay and min interval must not be negative"))
	}
	return errors.Join(errs...)
}

// Coalescer folds bursts of triggers into one sync each: the first
// trigger of a burst waits Delay (and at least until MinInterval after the
// previous sync started), every trigger until then joins it, and the sync
// gets the latest event. Triggers during a sync form the next burst. It
// implements Trigger; Run does the syncing.
type Coalescer struct {
	cfg  CoalescerConfig
	wake chan struct{}

	mu      sync.Mutex
	pending *Burst
}

var _ Trigger = (*Coalescer)(nil)

// NewCoalescer returns a Coalescer; start its Run.
func NewCoalescer(cfg CoalescerConfig) (*Coalescer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Delay == 0 {
		cfg.Delay = DefaultDelay
	}
	if cfg.MinInterval == 0 {
		cfg.MinInterval = DefaultMinInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	return &Coalescer{cfg: cfg, wake: make(chan struct{}, 1)}, nil
}

// Trigger records ev and returns at once; it never blocks on a sync.
func (c *Coalescer) Trigger(_ context.Context, ev Event) error {
	now := c.cfg.Clock.Now()
	c.mu.Lock()
	if c.pending == nil {
		c.pending = &Burst{First: now}
	}
	c.pending.Latest, c.pending.Last = ev, now
	c.pending.Count++
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// Pending returns the number of triggers waiting for the next sync.
func (c *Coalescer) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		return 0
	}
	return c.pending.Count
}

// Run calls the Syncer once per burst until ctx ends; it returns nil then.
// Triggers still pending when ctx ends are dropped (a poll or the next
// push catches up).
func (c *Coalescer) Run(ctx context.Context) error {
	var lastStart time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.wake:
		}
		if c.Pending() == 0 {
			continue
		}
		wait := c.cfg.Delay
		if !lastStart.IsZero() {
			if d := lastStart.Add(c.cfg.MinInterval).Sub(c.cfg.Clock.Now()); d > wait {
				wait = d
			}
		}
		t := c.cfg.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
		c.mu.Lock()
		b := c.pending
		c.pending = nil
		c.mu.Unlock()
		// A wake-up left by a trigger folded into b is harmless: the loop
		// finds nothing pending and waits again.
		if b == nil {
			continue
		}
		lastStart = c.cfg.Clock.Now()
		c.cfg.Syncer.Sync(ctx, *b)
	}
}
