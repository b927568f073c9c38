package store

import (
	"context"
	"errors"
	"time"
)

// Pass is one round of a controller: it reads the store, decides, commits,
// and returns when it wants to run again even if nothing changes (zero:
// only on change).
type Pass func(ctx context.Context) (wake time.Time, err error)

// LoopConfig shapes RunLoop.
type LoopConfig struct {
	// Kinds are the object kinds whose changes trigger a pass.
	Kinds []Kind
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// OnError sees pass errors (the loop carries on after RetryDelay).
	OnError func(error)
	// RetryDelay is the wait before a failed pass runs again (default 100ms).
	RetryDelay time.Duration
}

// RunLoop runs pass once, then again after every burst of committed
// changes to the given kinds (a burst is what is queued when the pass
// ends: many changes, one pass), and at the wake time it asks for. A
// watcher that falls behind is replaced and a full pass runs, so no change
// is ever missed. It returns when ctx ends.
func (s *Store) RunLoop(ctx context.Context, cfg LoopConfig, pass Pass) error {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	retry := cfg.RetryDelay
	if retry <= 0 {
		retry = 100 * time.Millisecond
	}
	for {
		w, err := s.Watch(cfg.Kinds...)
		if err != nil {
			return err
		}
		err = s.loopOnce(ctx, w, cfg, pass, now, retry)
		w.Close()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, ErrWatchOverflow) && !errors.Is(err, ErrResync) {
			return err
		}
	}
}

// loopOnce serves one watcher until it ends.
func (s *Store) loopOnce(ctx context.Context, w *Watcher, cfg LoopConfig, pass Pass, now func() time.Time, retry time.Duration) error {
	timer := time.NewTimer(0) // the first pass runs at once
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-w.Events():
			if !ok {
				return w.Err()
			}
			drain(w)
		case <-timer.C:
		}
		wake, err := pass(ctx)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		switch {
		case err != nil && ctx.Err() == nil:
			if cfg.OnError != nil {
				cfg.OnError(err)
			}
			timer.Reset(retry)
		case !wake.IsZero():
			timer.Reset(max(wake.Sub(now()), 0))
		}
	}
}

// drain takes the events already queued, which the coming pass covers.
func drain(w *Watcher) {
	for {
		select {
		case _, ok := <-w.Events():
			if !ok {
				return
			}
		default:
			return
		}
	}
}

// RetryConflicts runs fn up to attempts times while it fails with
// ErrVersionConflict: a controller that read a view, decided and lost a
// race with another writer decides again on a fresh view.
func RetryConflicts(attempts int, fn func() error) error {
	for i := 1; ; i++ {
		err := fn()
		if err == nil || !errors.Is(err, ErrVersionConflict) || i >= attempts {
			return err
		}
	}
}
