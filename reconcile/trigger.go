package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// SyncControl is what the trigger loop needs of the cluster besides
// Cluster: the sync state's control fields (Source, Suspended, Requests,
// Deliveries), changed in read-modify-write transactions of their own, and
// a signal when the state changes. It is an optional ability of a Cluster,
// found by type assertion: reconcile/storecluster has it; a Cluster
// without it gets poll, watch and window triggers but no requests.
type SyncControl interface {
	// UpdateSync reads the sync state, applies fn and writes the control
	// fields fn changed, in one transaction retried when a concurrent
	// write got there first. An error from fn aborts the write and is
	// returned as is, except ErrUnchanged, which writes nothing and
	// returns the state read. When a request gains a Record, that history
	// record is marked with the request's ID in the same transaction.
	UpdateSync(ctx context.Context, fn func(*api.SyncState) error) (api.SyncState, error)
	// WatchSync returns a channel that receives after changes of the sync
	// state (several changes may give one receive) until ctx ends.
	WatchSync(ctx context.Context) (<-chan struct{}, error)
}

// ErrUnchanged, returned by an UpdateSync function, means there is
// nothing to write.
var ErrUnchanged = errors.New("sync state unchanged")

// ErrSourceChanged is returned by Run when the sync state names another
// repository, ref or path than the one the loop started with: the caller
// builds a controller for the new source and runs it.
var ErrSourceChanged = errors.New("the Git source changed")

// Trigger loop defaults.
const (
	// DefaultDebounce is how long a webhook request or a change of a
	// local repository waits for others before its sync starts. Short:
	// deliveries of one push arrive within milliseconds and fold into the
	// one pending request as they are written, and whatever arrives
	// during a sync is served by the next one.
	DefaultDebounce = 25 * time.Millisecond
	// DefaultJitter spreads polls over ±10% of the interval.
	DefaultJitter = 0.1
	// maxDoneRequests and maxDeliveries bound the sync state's lists.
	maxDoneRequests = 10
	maxDeliveries   = 10
	// stateRetry is the wait after the sync state could not be read.
	stateRetry = 2 * time.Second
	// resync bounds a sleep with nothing due while the state is watched.
	resync = time.Hour
	// finishAttempts bounds the writes of a sync's outcome on its requests.
	finishAttempts = 3
	// revisionAttempts bounds the syncs run for a webhook that named a
	// commit the source does not show; they are revisionRetry apart, then
	// twice as far each time (1 s, 2 s, 4 s, 8 s: 15 s in all).
	revisionAttempts = 5
	revisionRetry    = time.Second
)

// TriggerConfig configures Controller.RunTriggers beyond the controller's
// own configuration (its clock, logger and poll interval).
type TriggerConfig struct {
	// Changes receives when a local repository's refs change (see
	// WatchRefs); nil when the source is not local.
	Changes <-chan struct{}
	// Debounce is DefaultDebounce when zero.
	Debounce time.Duration
	// Jitter is the fraction of the poll interval by which each poll is
	// moved at random: DefaultJitter when zero, none when negative.
	Jitter float64
	// Rand returns numbers in [0, 1); math/rand/v2 when nil.
	Rand func() float64
	// Node names this manager on the requests it takes.
	Node string
}

func (t TriggerConfig) withDefaults() TriggerConfig {
	if t.Debounce == 0 {
		t.Debounce = DefaultDebounce
	}
	if t.Jitter == 0 {
		t.Jitter = DefaultJitter
	}
	if t.Jitter < 0 {
		t.Jitter = 0
	}
	if t.Rand == nil {
		t.Rand = rand.Float64
	}
	return t
}

// Run is RunTriggers without local changes.
func (c *Controller) Run(ctx context.Context) error {
	return c.RunTriggers(ctx, TriggerConfig{})
}

// RunTriggers syncs at once, then whenever a trigger says so, until ctx
// ends (it returns nil then) or the source in the sync state changes
// (ErrSourceChanged):
//   - a poll every interval (the source's, else PollInterval), ±jitter;
//   - a change of a local repository (tc.Changes), debounced;
//   - sync requests in the sync state (SyncControl): manual ones at once,
//     webhook ones debounced; every request pending when a sync starts is
//     served by it, and gets its outcome when it ends.
//
// Automatic syncs (poll, watch, webhook) wait while the state is
// suspended or outside the source's sync windows; webhook requests that
// arrive while suspended are answered "not run". Manual requests always
// run. Sync errors are logged; what users must act on is on the state.
func (c *Controller) RunTriggers(ctx context.Context, tc TriggerConfig) error {
	ctl, _ := c.cfg.Cluster.(SyncControl)
	l := &triggerLoop{sync: c.Sync, state: c.cfg.Cluster, ctl: ctl, clock: c.cfg.Clock,
		log: c.cfg.Logger, poll: c.cfg.PollInterval, cfg: tc.withDefaults()}
	if rr, ok := c.cfg.Source.(RevisionResolver); ok {
		l.has = func(rev string) bool { _, err := rr.ResolveRevision(rev); return err == nil }
	}
	return l.run(ctx)
}

// syncStateReader reads the sync state: Cluster.Sync.
type syncStateReader interface {
	Sync(ctx context.Context) (api.SyncState, error)
}

// triggerLoop decides when to sync; the decisions are made on one
// goroutine from the sync state and the clock.
type triggerLoop struct {
	sync  func(context.Context, api.SyncTrigger) (api.SyncRecord, error)
	state syncStateReader
	ctl   SyncControl // nil: no requests
	clock Clock
	log   *slog.Logger
	poll  time.Duration
	cfg   TriggerConfig
	watch <-chan struct{} // changes of the sync state; nil without SyncControl
	// has says whether the source holds a commit (after a fetch); nil:
	// a webhook's named commit is not checked.
	has func(commit string) bool
}

// sourceKey is what identifies the repository a loop follows.
type sourceKey struct{ url, ref, path string }

func keyOf(s api.SourceSpec) sourceKey { return sourceKey{s.URL, s.Ref, s.Path} }

func (l *triggerLoop) interval(st api.SyncState) time.Duration {
	if iv := st.Source.Interval.Std(); iv > 0 {
		return iv
	}
	return l.poll
}

// jittered moves d by up to ±Jitter of itself.
func (l *triggerLoop) jittered(d time.Duration) time.Duration {
	return d + time.Duration((2*l.cfg.Rand()-1)*l.cfg.Jitter*float64(d))
}

func (l *triggerLoop) run(ctx context.Context) error {
	if l.ctl != nil {
		ch, err := l.ctl.WatchSync(ctx)
		if err != nil {
			return fmt.Errorf("watch the sync state: %w", err)
		}
		l.watch = ch
		// Requests a previous leader took and never finished are pending
		// again: this leader serves them.
		if _, err := l.ctl.UpdateSync(ctx, requeueStarted); err != nil {
			return fmt.Errorf("take over sync requests: %w", err)
		}
	}
	st, err := l.state.Sync(ctx)
	if err != nil {
		return fmt.Errorf("read sync state: %w", err)
	}
	source, interval := keyOf(st.Source), l.interval(st)
	nextPoll := l.clock.Now() // the first sync is at once
	var changeAt, requestAt time.Time
	for {
		if ctx.Err() != nil {
			return nil
		}
		st, err := l.state.Sync(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.log.WarnContext(ctx, "read sync state", logKeyErr, err)
			if !l.wait(ctx, stateRetry, &changeAt) {
				return nil
			}
			continue
		}
		if keyOf(st.Source) != source {
			return ErrSourceChanged
		}
		now := l.clock.Now()
		if iv := l.interval(st); iv != interval {
			interval, nextPoll = iv, now.Add(l.jittered(iv))
		}
		windows, err := CompileWindows(st.Source.Windows)
		if err != nil {
			// Windows are checked when they are written; a bad one here
			// came from elsewhere and must not stop deployments.
			l.log.WarnContext(ctx, "sync windows ignored", logKeyErr, err)
		}
		open, openAt := windows.Open(now)
		auto := open && !st.Suspended
		var manual, webhook bool
		var retryAt time.Time // the first webhook request waiting to run again
		for _, r := range st.Requests {
			if !r.Pending() || l.ctl == nil {
				continue
			}
			if r.Trigger != api.TriggerManual && r.RetryAt.After(now) {
				if retryAt.IsZero() || r.RetryAt.Before(retryAt) {
					retryAt = r.RetryAt
				}
				continue
			}
			manual = manual || r.Trigger == api.TriggerManual
			webhook = webhook || r.Trigger != api.TriggerManual
		}
		if !webhook && !manual {
			requestAt = time.Time{}
		} else if requestAt.IsZero() {
			requestAt = now
		}

		var trigger api.SyncTrigger
		run := true
		switch {
		case manual:
			trigger = api.TriggerManual
		case webhook && st.Suspended:
			if err := l.finishPending(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				l.log.WarnContext(ctx, "answer sync requests", logKeyErr, err)
				if !l.wait(ctx, stateRetry, &changeAt) {
					return nil
				}
			}
			continue
		case webhook && auto && !now.Before(requestAt.Add(l.cfg.Debounce)):
			trigger = api.TriggerWebhook
		case webhook:
			run = false // debounce, or wait for the window
		case !changeAt.IsZero() && auto && !now.Before(changeAt.Add(l.cfg.Debounce)):
			trigger = api.TriggerWatch
		case auto && !now.Before(nextPoll):
			trigger = api.TriggerPoll
		default:
			run = false
		}
		if run {
			if err := l.syncOnce(ctx, trigger, manual || webhook); err != nil {
				return err
			}
			requestAt, changeAt = time.Time{}, time.Time{}
			nextPoll = l.clock.Now().Add(l.jittered(interval))
			continue
		}

		// Nothing to do now: sleep until the next thing that may be due,
		// or until the state or a local repository changes. Without a
		// watch of the state, read it again every interval at least.
		wake := now.Add(resync)
		if l.watch == nil {
			wake = now.Add(interval)
		}
		due := func(t time.Time) {
			if !open {
				t = openAt
			}
			if !t.IsZero() && t.Before(wake) {
				wake = t
			}
		}
		if !st.Suspended {
			due(nextPoll)
			if webhook {
				due(requestAt.Add(l.cfg.Debounce))
			}
			due(retryAt)
			if !changeAt.IsZero() {
				due(changeAt.Add(l.cfg.Debounce))
			}
		}
		if !l.wait(ctx, wake.Sub(now), &changeAt) {
			return nil
		}
	}
}

// wait sleeps for d, or until the sync state or a local repository
// changes; it reports false when ctx ended.
func (l *triggerLoop) wait(ctx context.Context, d time.Duration, changeAt *time.Time) bool {
	if d < 0 {
		d = 0
	}
	select {
	case <-ctx.Done():
		return false
	case _, ok := <-l.watch:
		if !ok && ctx.Err() == nil {
			// Requests are then seen when the state is read again.
			l.log.WarnContext(ctx, "the sync state watch ended: the state is read every poll interval")
			l.watch = nil
		}
	case <-l.cfg.Changes:
		if changeAt.IsZero() {
			*changeAt = l.clock.Now()
		}
	case <-l.clock.After(d):
	}
	return true
}

// syncOnce runs one sync for trigger; with requests, every pending
// request is taken first and given the outcome after. Only the end of ctx
// is an error: it leaves taken requests to the next leader.
func (l *triggerLoop) syncOnce(ctx context.Context, trigger api.SyncTrigger, requests bool) error {
	var taken []api.SyncRequest
	if requests && l.ctl != nil {
		var err error
		if taken, err = l.take(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.log.WarnContext(ctx, "take sync requests", logKeyErr, err)
		}
	}
	rec, err := l.sync(ctx, trigger)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		l.log.WarnContext(ctx, "sync", logKeyTrigger, trigger.String(), logKeyErr, err)
	}
	if len(taken) == 0 {
		return nil
	}
	st, serr := l.state.Sync(ctx)
	if serr != nil {
		st = api.SyncState{}
	}
	result, msg := outcome(trigger, rec, err, st)
	unseen := l.unseen(taken)
	// The requesters wait for this answer: try again a few times (a new
	// leader would answer them too, by serving them again).
	for attempt := 1; ; attempt++ {
		ferr := l.finish(ctx, taken, unseen, rec.ID, result, msg)
		if ferr == nil || ctx.Err() != nil {
			return nil
		}
		l.log.WarnContext(ctx, "answer sync requests", "attempt", attempt, logKeyErr, ferr)
		if attempt == finishAttempts {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-l.clock.After(stateRetry):
		}
	}
}

// take marks every pending request started by this manager and returns
// them.
func (l *triggerLoop) take(ctx context.Context) ([]api.SyncRequest, error) {
	var taken []api.SyncRequest
	now := l.clock.Now()
	_, err := l.ctl.UpdateSync(ctx, func(st *api.SyncState) error {
		taken = taken[:0]
		for i := range st.Requests {
			r := &st.Requests[i]
			if r.Pending() {
				r.StartedAt, r.Node = now, l.cfg.Node
				taken = append(taken, *r)
			}
		}
		if len(taken) == 0 {
			return ErrUnchanged
		}
		return nil
	})
	return taken, err
}

// unseen returns the taken webhook requests whose named commit the source
// does not hold after the sync: the Git server announced a push it does
// not serve yet (a replica behind, a mirror not updated). A commit the ref
// has moved past is held, so a later push does not count.
func (l *triggerLoop) unseen(taken []api.SyncRequest) map[string]bool {
	out := map[string]bool{}
	if l.has == nil {
		return out
	}
	for _, r := range taken {
		if r.Trigger != api.TriggerManual && r.Revision != "" && !l.has(r.Revision) {
			out[r.ID] = true
		}
	}
	return out
}

// finish writes the outcome of a sync on the requests it served; a
// webhook request whose commit the source does not show yet (unseen)
// waits and runs again, revisionAttempts times at most.
func (l *triggerLoop) finish(ctx context.Context, taken []api.SyncRequest, unseen map[string]bool, record string, result api.SyncPhase, msg string) error {
	now := l.clock.Now()
	ids := map[string]api.SyncRequest{}
	for _, r := range taken {
		ids[r.ID] = r
	}
	_, err := l.ctl.UpdateSync(ctx, func(st *api.SyncState) error {
		for i := range st.Requests {
			r := &st.Requests[i]
			if _, ok := ids[r.ID]; !ok || r.Done() {
				continue
			}
			if unseen[r.ID] && r.Attempts+1 < revisionAttempts {
				r.Attempts++
				r.RetryAt = now.Add(revisionRetry << (r.Attempts - 1))
				r.StartedAt, r.Node = time.Time{}, ""
				r.Message = fmt.Sprintf("the source does not show %s yet (fetch %d of %d); fetching again at %s",
					short(r.Revision), r.Attempts, revisionAttempts, r.RetryAt.UTC().Format(time.TimeOnly))
				continue
			}
			r.FinishedAt, r.Result, r.Record, r.Message = now, result, record, msg
			switch {
			case unseen[r.ID]:
				r.Attempts++
				r.Message += fmt.Sprintf(" (the webhook named %s, which the source did not show after %d fetches; the ref is at %s)",
					short(r.Revision), r.Attempts, short(st.Revision))
			case r.Revision != "" && st.Revision != "" && r.Revision != st.Revision:
				r.Message += fmt.Sprintf(" (the webhook named %s; the source's ref was at %s)", short(r.Revision), short(st.Revision))
			}
		}
		trimRequests(st)
		return nil
	})
	return err
}

// finishPending answers the pending webhook requests without a sync:
// automatic syncs are suspended.
func (l *triggerLoop) finishPending(ctx context.Context) error {
	now := l.clock.Now()
	_, err := l.ctl.UpdateSync(ctx, func(st *api.SyncState) error {
		n := 0
		for i := range st.Requests {
			r := &st.Requests[i]
			if r.Pending() && r.Trigger != api.TriggerManual {
				r.StartedAt, r.FinishedAt, r.Node = now, now, l.cfg.Node
				r.Result, r.Message = api.SyncSuspended, "not run: automatic syncs are suspended (gitorc resume, or gitorc sync to sync anyway)"
				n++
			}
		}
		if n == 0 {
			return ErrUnchanged
		}
		trimRequests(st)
		return nil
	})
	return err
}

// outcome is what a request learns of the sync that served it.
func outcome(trigger api.SyncTrigger, rec api.SyncRecord, err error, st api.SyncState) (api.SyncPhase, string) {
	switch {
	case rec.ID != "" && err != nil:
		result := rec.Result
		if result == api.SyncProgressing || result == api.SyncUnknown {
			result = api.SyncFailed
		}
		return result, fmt.Sprintf("%s: %v", firstNonEmpty(rec.Message, "revision "+short(rec.Revision)), err)
	case rec.ID != "":
		return rec.Result, rec.Message
	case err != nil:
		return api.SyncFailed, "sync failed: " + err.Error()
	case st.Suspended && trigger != api.TriggerManual:
		return api.SyncSuspended, "not run: automatic syncs are suspended"
	}
	msg := "nothing new to apply"
	if st.Message != "" {
		msg += ": " + st.Message
	} else if st.Revision != "" {
		msg += fmt.Sprintf(": revision %s is %s", short(st.Revision), st.Phase)
	}
	return st.Phase, msg
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// requeueStarted makes requests taken but never finished pending again.
func requeueStarted(st *api.SyncState) error {
	n := 0
	for i := range st.Requests {
		if r := &st.Requests[i]; !r.Pending() && !r.Done() {
			r.StartedAt, r.Node = time.Time{}, ""
			n++
		}
	}
	if n == 0 {
		return ErrUnchanged
	}
	return nil
}

// QueueRequest adds a sync request to the state, or folds it into the
// pending request of the same trigger (a burst of webhook deliveries, or
// gitorc sync run again before a leader took the first), and returns the
// request that stands for it. r.Count 0 counts as 1.
func QueueRequest(st *api.SyncState, r api.SyncRequest) api.SyncRequest {
	n := max(r.Count, 1)
	for i := range st.Requests {
		p := &st.Requests[i]
		if p.Pending() && p.Trigger == r.Trigger {
			p.Count += n
			if r.Revision != "" {
				// A new commit: the waits for an earlier one end.
				p.Revision, p.Attempts, p.RetryAt = r.Revision, 0, time.Time{}
			}
			return *p
		}
	}
	r.Count = n
	st.Requests = append(st.Requests, r)
	trimRequests(st)
	return r
}

// FindRequest returns the request with that ID.
func FindRequest(st api.SyncState, id string) (api.SyncRequest, bool) {
	for _, r := range st.Requests {
		if r.ID == id {
			return r, true
		}
	}
	return api.SyncRequest{}, false
}

// AddDelivery records a webhook delivery, keeping the last few.
func AddDelivery(st *api.SyncState, d api.WebhookDelivery) {
	st.Deliveries = append(st.Deliveries, d)
	if n := len(st.Deliveries); n > maxDeliveries {
		st.Deliveries = append([]api.WebhookDelivery(nil), st.Deliveries[n-maxDeliveries:]...)
	}
}

// AddNotification records a notification's outcome, keeping the last
// few.
func AddNotification(st *api.SyncState, d api.NotifyDelivery) {
	st.Notifications = append(st.Notifications, d)
	if n := len(st.Notifications); n > maxDeliveries {
		st.Notifications = append([]api.NotifyDelivery(nil), st.Notifications[n-maxDeliveries:]...)
	}
}

// trimRequests keeps every unfinished request and the last finished ones.
func trimRequests(st *api.SyncState) {
	done := 0
	for _, r := range st.Requests {
		if r.Done() {
			done++
		}
	}
	if done <= maxDoneRequests {
		return
	}
	drop := done - maxDoneRequests
	kept := make([]api.SyncRequest, 0, len(st.Requests)-drop)
	for _, r := range st.Requests {
		if r.Done() && drop > 0 {
			drop--
			continue
		}
		kept = append(kept, r)
	}
	st.Requests = kept
}
