package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
)

// Task logs: a manager asks the worker for a task's log over the worker's
// session (wire/logs.go). Each request has a buffer of wire.LogsWindow
// chunks, and the worker never has more than that in flight (credit): the
// session's receive loop hands a chunk over without ever blocking on the
// reader, so a slow reader holds up only its own request. A worker that
// overruns its credit loses that request, not its session.

// logReq is one log request in flight on a session.
type logReq struct {
	ch   chan *wire.LogsChunk // the chunks received and not yet taken
	done chan struct{}        // closed when the request ended; err says why
	err  error
	once sync.Once
}

func (r *logReq) finish(err error) {
	r.once.Do(func() {
		r.err = err
		close(r.done)
	})
}

// logReqs are a session's requests in flight.
type logReqs struct {
	mu     sync.Mutex
	ready  bool // the worker was sent its Session: requests may go
	ended  error
	nextID uint64
	m      map[uint64]*logReq
}

// open registers a new request; it fails when the session cannot take
// requests (not yet acknowledged, or ended).
func (l *logReqs) open() (uint64, *logReq, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended != nil {
		return 0, nil, l.ended
	}
	if !l.ready {
		return 0, nil, ErrNoSession
	}
	l.nextID++
	r := &logReq{ch: make(chan *wire.LogsChunk, wire.LogsWindow), done: make(chan struct{})}
	if l.m == nil {
		l.m = map[uint64]*logReq{}
	}
	l.m[l.nextID] = r
	return l.nextID, r, nil
}

func (l *logReqs) setReady() {
	l.mu.Lock()
	l.ready = true
	l.mu.Unlock()
}

func (l *logReqs) take(id uint64) *logReq {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.m[id]
	delete(l.m, id)
	return r
}

func (l *logReqs) get(id uint64) *logReq {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m[id]
}

// end fails every request in flight, and every later one, with err.
func (l *logReqs) end(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended == nil {
		l.ended = err
	}
	for id, r := range l.m {
		r.finish(err)
		delete(l.m, id)
	}
}

// onChunk hands a worker's chunk to its request without blocking. A
// chunk of a request no longer in flight (cancelled) is dropped.
func (s *session) onChunk(c *wire.LogsChunk) {
	r := s.logs.get(c.ID)
	if r == nil {
		return
	}
	select {
	case r.ch <- c:
	default:
		s.logs.take(c.ID)
		r.finish(errLogsOverrun)
		go func() { _ = s.send(&wire.ManagerMessage{LogsCancel: &wire.LogsCancel{ID: c.ID}}) }()
	}
}

func (s *session) onEnd(e *wire.LogsEnd) {
	r := s.logs.take(e.ID)
	if r == nil {
		return
	}
	var err error
	if e.Error != "" {
		err = &RemoteLogError{Msg: e.Error}
	}
	r.finish(err)
}

var errLogsOverrun = errors.New("the node sent more log than it had credit for")

// RemoteLogError is an error a worker answered a log request with.
type RemoteLogError struct{ Msg string }

func (e *RemoteLogError) Error() string { return e.Msg }

// TaskLogs reads a task's log from nodeID, through the node's session with
// this manager: fn receives the lines in the order written, in batches;
// live is set from the batch on that ends the backlog of a followed log
// (a batch may then be empty). It returns nil when the worker has sent
// the whole log (with opts.Follow, only when ctx ends), ErrNoSession when
// the node holds no session here, ErrSessionEnded (wrapped) when the
// session ends first, the worker's error (*RemoteLogError), or fn's.
func (d *Dispatcher) TaskLogs(ctx context.Context, nodeID, taskID string, opts api.LogOptions, fn func(recs []api.LogRecord, live bool) error) error {
	d.mu.Lock()
	s := d.sessions[nodeID]
	d.mu.Unlock()
	if s == nil {
		return ErrNoSession
	}
	id, r, err := s.logs.open()
	if err != nil {
		return err
	}
	cancel := func() {
		if s.logs.take(id) != nil {
			_ = s.send(&wire.ManagerMessage{LogsCancel: &wire.LogsCancel{ID: id}})
		}
	}
	if err := s.send(&wire.ManagerMessage{LogsRequest: &wire.LogsRequest{ID: id, TaskID: taskID, Options: opts}}); err != nil {
		s.logs.take(id)
		return fmt.Errorf("%w: %v", ErrSessionEnded, err)
	}
	deliver := func(c *wire.LogsChunk) error {
		if err := fn(c.Records, c.Live); err != nil {
			return err
		}
		return s.send(&wire.ManagerMessage{LogsAck: &wire.LogsAck{ID: id, N: 1}})
	}
	for {
		select {
		case c := <-r.ch:
			if err := deliver(c); err != nil {
				cancel()
				return err
			}
		case <-r.done:
			for {
				select {
				case c := <-r.ch:
					if err := fn(c.Records, c.Live); err != nil {
						return err
					}
				default:
					return r.err
				}
			}
		case <-ctx.Done():
			cancel()
			return ctx.Err()
		}
	}
}
