package session

import (
	"context"
	"errors"
	"sync"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
)

// LogReader reads a task's log on this node; the containerd executor is
// one. It calls fn with the lines in the order written, in batches, and
// with live set from the batch on that ends the backlog of a followed log.
// It returns when the log is read (with Follow, when ctx ends) or fn
// fails.
type LogReader interface {
	ReadLogs(ctx context.Context, taskID string, opts api.LogOptions, fn func(recs []api.LogRecord, live bool) error) error
}

// ErrNoLogs answers log requests on a node whose client has no LogReader.
var ErrNoLogs = errors.New("this node serves no task logs")

// sender serialises the sends of one session: heartbeats, statuses and
// the chunks of every log request.
type sender struct {
	mu     sync.Mutex
	stream wire.SessionClient
}

func (s *sender) send(m *wire.WorkerMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stream.Send(m)
}

// logServer serves a session's log requests, each in a goroutine it owns,
// until the session ends (wait).
type logServer struct {
	ctx    context.Context // the session's
	reader LogReader
	out    *sender

	mu   sync.Mutex
	reqs map[uint64]*logServe
	wg   sync.WaitGroup
}

// logServe is one request being served.
type logServe struct {
	cancel context.CancelFunc
	credit chan struct{} // a token per chunk the manager will take
}

func newLogServer(ctx context.Context, r LogReader, out *sender) *logServer {
	return &logServer{ctx: ctx, reader: r, out: out, reqs: map[uint64]*logServe{}}
}

func (l *logServer) handle(m *wire.ManagerMessage) {
	switch {
	case m.LogsRequest != nil:
		l.start(m.LogsRequest)
	case m.LogsAck != nil:
		l.mu.Lock()
		r := l.reqs[m.LogsAck.ID]
		l.mu.Unlock()
		if r == nil {
			return
		}
		for range min(m.LogsAck.N, wire.LogsWindow) {
			select {
			case r.credit <- struct{}{}:
			default: // more credit than the window: ignore
			}
		}
	case m.LogsCancel != nil:
		l.mu.Lock()
		r := l.reqs[m.LogsCancel.ID]
		l.mu.Unlock()
		if r != nil {
			r.cancel()
		}
	}
}

func (l *logServer) start(req *wire.LogsRequest) {
	ctx, cancel := context.WithCancel(l.ctx)
	r := &logServe{cancel: cancel, credit: make(chan struct{}, wire.LogsWindow)}
	for range wire.LogsWindow {
		r.credit <- struct{}{}
	}
	l.mu.Lock()
	if old := l.reqs[req.ID]; old != nil {
		old.cancel()
	}
	l.reqs[req.ID] = r
	l.mu.Unlock()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer cancel()
		err := l.serve(ctx, req, r)
		l.mu.Lock()
		if l.reqs[req.ID] == r {
			delete(l.reqs, req.ID)
		}
		l.mu.Unlock()
		if l.ctx.Err() != nil {
			return // the session ended: nobody to tell
		}
		end := &wire.LogsEnd{ID: req.ID}
		if err != nil && ctx.Err() == nil {
			end.Error = err.Error()
		}
		_ = l.out.send(&wire.WorkerMessage{LogsEnd: end})
	}()
}

// serve reads the task's log and sends it in chunks of at most
// wire.MaxLogsChunk bytes, each when the manager has credit for it.
func (l *logServer) serve(ctx context.Context, req *wire.LogsRequest, r *logServe) error {
	if l.reader == nil {
		return ErrNoLogs
	}
	sendChunk := func(recs []api.LogRecord, live bool) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.credit:
		}
		return l.out.send(&wire.WorkerMessage{LogsChunk: &wire.LogsChunk{ID: req.ID, Records: recs, Live: live}})
	}
	return l.reader.ReadLogs(ctx, req.TaskID, req.Options, func(recs []api.LogRecord, live bool) error {
		if len(recs) == 0 {
			return sendChunk(nil, live)
		}
		start, size := 0, 0
		for i, rec := range recs {
			if len(rec.Line) > wire.MaxLogLine {
				recs[i].Line = rec.Line[:wire.MaxLogLine]
			}
			n := len(recs[i].Line) + 64
			if i > start && size+n > wire.MaxLogsChunk {
				if err := sendChunk(recs[start:i], live); err != nil {
					return err
				}
				start, size = i, 0
			}
			size += n
		}
		return sendChunk(recs[start:], live)
	})
}

// wait cancels nothing itself: it waits for the requests to end, which
// they do when the session's context ends.
func (l *logServer) wait() { l.wg.Wait() }
