package agent

import (
	"context"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

type progressKey struct{}

// WithProgress returns ctx carrying fn, which an executor calls with a
// line on what a long step (an image pull) is doing.
func WithProgress(ctx context.Context, fn func(line string)) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

// Progress tells ctx's progress function, if any, what a long step is
// doing.
func Progress(ctx context.Context, line string) {
	if fn, ok := ctx.Value(progressKey{}).(func(string)); ok {
		fn(line)
	}
}

// progressEvery is how often a task's progress is reported at most: a
// pull's every blob would be a report otherwise.
const progressEvery = time.Second

// progress returns the progress function of a task's prepare: the line
// becomes the message of its status while it is preparing, reported to
// the managers at most every progressEvery.
func (a *Agent) progress(ctx context.Context, id string) func(string) {
	var last time.Time
	return func(line string) {
		now := a.cfg.Clock.Now()
		if !last.IsZero() && now.Sub(last) < progressEvery {
			return
		}
		a.mu.Lock()
		e, ok := a.tasks[id]
		if !ok || e.status.State != api.TaskPreparing || e.status.Message == line {
			a.mu.Unlock()
			return
		}
		last = now
		e.status.Message, e.status.Timestamp = line, now
		st := e.status
		a.mu.Unlock()
		a.report(ctx, []report{{id, st}})
	}
}
