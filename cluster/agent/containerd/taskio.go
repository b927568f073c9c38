package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/pkg/cio"
	"golang.org/x/sys/unix"

	"github.com/gitorc/gitorc/cluster/api"
)

// The executor reads its tasks' stdout and stderr itself, as dockerd
// does: the shim writes them to two FIFOs under DataDir/fifo
// (<id>.stdout, <id>.stderr), and one goroutine per stream appends a
// record "TIME STREAM F|P LINE" for each line to the task's log file
// (logread.go reads them back). That costs two goroutines and two small
// buffers per task, where a log driver process per task (containerd's
// binary:// log URI, what gitorc ran before) cost about 2.2 MiB RSS each.
//
// The trade: the output no longer has a reader of its own that outlives
// the executor. While the executor is down, what a task writes fills the
// FIFO's pipe buffer (64 KiB; the shim holds the FIFO open for reading
// too, so its writes never fail), then the shim's copy blocks (holding
// up to 32 KiB), then the task's own pipe fills (another 64 KiB), and
// then the task's write blocks
// until an executor reads again: nothing is lost and nothing runs out of
// memory, but a chatty task stalls, as under a stopped dockerd. A
// restarted executor finds the FIFO paths containerd keeps in each
// task's IO (adoptLogs, and Observe for any it missed) and reads on from
// where the pipe stands. A line the old executor had read only part of
// when it was closed is kept in <id>.stdout.partial and finished by the
// next one; one it had read when it was killed is lost (at most a read,
// 8 KiB, and a partial line per stream). A task that exits while no
// executor reads loses what was still in the pipe buffer when the shim
// closes it.

// Bounds of the readers.
const (
	maxLogLine   = 16 << 10 // the longest piece of a line a record holds; longer lines are cut in pieces (P)
	taskReadSize = 8 << 10  // per stream and read
	// logDrainTimeout bounds waiting, once a task was deleted, for its
	// streams' last output before they are cut.
	logDrainTimeout = 5 * time.Second
)

// errAttached: the task's streams have a reader already; errClosed: the
// executor is closed.
var (
	errAttached = errors.New("task output is read already")
	errClosed   = errors.New("executor closed")
)

// taskStreams are the streams the executor reads, in record names.
var taskStreams = [2]string{api.LogStdout, api.LogStderr}

func (e *Executor) fifoPath(taskID, stream string) string {
	return filepath.Join(e.fifoDir(), taskID+"."+stream)
}

// taskLogs are the readers of the tasks' streams, by task ID.
type taskLogs struct {
	mu     sync.Mutex
	m      map[string]*taskLog
	closed bool           // the executor closed: no more readers
	wg     sync.WaitGroup // every stream's goroutine
}

// taskLog reads one task's two streams into its log file.
type taskLog struct {
	id      string
	started bool        // under taskLogs.mu
	files   [2]*os.File // read ends of the FIFOs
	partial [2]string   // where a half-read line waits for the next executor
	out     *os.File    // the log file
	done    chan struct{}
	cut     chan struct{} // closed when the streams are cut: the rest of a line is written, not kept
	once    sync.Once
}

// openTaskLog creates the task's FIFOs and opens their read ends without
// waiting for a writer: the shim's open for writing needs a reader, and
// reading starts only once it has one (startTaskLog), since a FIFO
// without a writer reads as ended. It is registered under taskID, and
// fails with errAttached when a reader is registered there already, and
// with errClosed once the executor closed.
func (e *Executor) openTaskLog(taskID string) (*taskLog, error) {
	e.logs.mu.Lock()
	_, ok := e.logs.m[taskID]
	e.logs.mu.Unlock()
	if ok {
		return nil, errAttached
	}
	l := &taskLog{id: taskID, done: make(chan struct{}), cut: make(chan struct{})}
	for i, s := range taskStreams {
		p := e.fifoPath(taskID, s)
		if err := unix.Mkfifo(p, 0o600); err != nil && !errors.Is(err, unix.EEXIST) {
			l.closeFiles()
			return nil, fmt.Errorf("task io: %w", err)
		}
		f, err := openFIFO(p)
		if err != nil {
			l.closeFiles()
			return nil, fmt.Errorf("task io: %w", err)
		}
		l.files[i], l.partial[i] = f, p+".partial"
	}
	out, err := os.OpenFile(e.logPath(taskID), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		l.closeFiles()
		return nil, fmt.Errorf("task io: %w", err)
	}
	l.out = out
	e.logs.mu.Lock()
	defer e.logs.mu.Unlock()
	if e.logs.closed {
		l.closeFiles()
		return nil, errClosed
	}
	if _, ok := e.logs.m[taskID]; ok {
		l.closeFiles()
		return nil, errAttached
	}
	if e.logs.m == nil {
		e.logs.m = map[string]*taskLog{}
	}
	e.logs.m[taskID] = l
	return l, nil
}

// openFIFO opens a FIFO's read end non-blocking, so that reads wait in
// the runtime's poller and a deadline ends them.
func openFIFO(p string) (*os.File, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

func (l *taskLog) closeFiles() {
	for _, f := range l.files {
		if f != nil {
			f.Close()
		}
	}
	if l.out != nil {
		l.out.Close()
	}
}

// creator hands containerd the FIFOs' paths; the executor owns them, so
// the IO's Cancel, Wait and Close do nothing.
func (l *taskLog) creator() cio.Creator {
	return func(string) (cio.IO, error) {
		return taskIO{cio.Config{Stdout: l.files[0].Name(), Stderr: l.files[1].Name()}}, nil
	}
}

type taskIO struct{ cfg cio.Config }

func (t taskIO) Config() cio.Config { return t.cfg }
func (taskIO) Cancel()              {}
func (taskIO) Wait()                {}
func (taskIO) Close() error         { return nil }

// startTaskLog reads both streams until they end, the executor closes,
// or the task is deleted.
func (e *Executor) startTaskLog(l *taskLog) {
	e.logs.mu.Lock()
	l.started = true
	e.logs.mu.Unlock()
	w := &recordWriter{w: l.out, now: time.Now}
	var wg sync.WaitGroup
	for i := range l.files {
		wg.Add(1)
		e.logs.wg.Add(1)
		go func() {
			defer e.logs.wg.Done()
			defer wg.Done()
			if err := l.copy(w, i); err != nil {
				e.log.Warn("task output", logKeyTask, l.id, "stream", taskStreams[i], logKeyErr, err)
			}
		}()
	}
	e.logs.wg.Add(1)
	go func() {
		defer e.logs.wg.Done()
		wg.Wait()
		l.out.Close()
		close(l.done)
	}()
}

// copy reads stream i into w until it ends (its last line written), or
// its read is cut by a deadline: on Close (the rest of a half-read line
// kept in the partial file) or on delete (written).
func (l *taskLog) copy(w *recordWriter, i int) error {
	f, stream := l.files[i], taskStreams[i]
	defer f.Close()
	carry, err := os.ReadFile(l.partial[i])
	if err == nil {
		_ = os.Remove(l.partial[i])
	}
	rest, err := w.copy(f, stream, carry)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	select {
	case <-l.cut:
		_, err = w.lines(rest, stream, true)
		return err
	default:
	}
	if len(rest) > 0 {
		return os.WriteFile(l.partial[i], rest, 0o600)
	}
	return nil
}

// stop ends the reads now; final writes what was read of a last line
// instead of keeping it for the next executor.
func (l *taskLog) stop(final bool) {
	l.once.Do(func() {
		if final {
			close(l.cut)
		}
		for _, f := range l.files {
			_ = f.SetReadDeadline(time.Now())
		}
	})
}

// adoptLogs reads on the streams of the running tasks this executor
// started before it restarted: containerd keeps the FIFO paths in each
// task's IO. Tasks whose output goes elsewhere (another executor's
// FIFOs, or a log driver of an older version, which writes on) are left
// alone.
func (e *Executor) adoptLogs(procs []*tasktypes.Process) {
	for _, p := range procs {
		id := p.ContainerID
		if id == "" {
			id = p.ID
		}
		if p.Status == tasktypes.Status_STOPPED || checkID(id) != nil ||
			p.Stdout != e.fifoPath(id, api.LogStdout) || p.Stderr != e.fifoPath(id, api.LogStderr) {
			continue
		}
		e.logs.mu.Lock()
		_, ok := e.logs.m[id]
		e.logs.mu.Unlock()
		if ok {
			continue
		}
		l, err := e.openTaskLog(id)
		if errors.Is(err, errAttached) || errors.Is(err, errClosed) {
			continue
		}
		if err != nil {
			e.log.Warn("attach task output", logKeyTask, id, logKeyErr, err)
			continue
		}
		e.startTaskLog(l)
	}
}

// stopTaskLog forgets a task's reader: with drain (the task was deleted,
// its streams end by themselves) after it wrote the last output, else at
// once; then it removes the FIFOs.
func (e *Executor) stopTaskLog(taskID string, drain bool) {
	e.logs.mu.Lock()
	l := e.logs.m[taskID]
	delete(e.logs.m, taskID)
	started := l != nil && l.started
	e.logs.mu.Unlock()
	switch {
	case l == nil:
	case !started:
		l.closeFiles()
	default:
		select {
		case <-l.done:
		default:
			if drain {
				t := e.cfg.Clock.NewTimer(logDrainTimeout)
				select {
				case <-l.done:
				case <-t.C():
				}
				t.Stop()
			}
			l.stop(true)
			<-l.done
		}
	}
	for _, s := range taskStreams {
		p := e.fifoPath(taskID, s)
		_ = os.Remove(p)
		_ = os.Remove(p + ".partial")
	}
}

// closeTaskLogs ends every read for this executor's close; the tasks'
// output waits in the pipes for the next executor.
func (e *Executor) closeTaskLogs() {
	e.logs.mu.Lock()
	for _, l := range e.logs.m {
		if l.started {
			l.stop(false)
		} else {
			l.closeFiles()
		}
	}
	e.logs.m, e.logs.closed = nil, true
	e.logs.mu.Unlock()
	e.logs.wg.Wait()
}

// recordWriter writes records of several streams to one log file, each
// read's records in one write.
type recordWriter struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
}

// copy writes a record for each line r yields, after carry (the start of
// a line read before), until r ends (the last line written, even without
// its newline) or fails: then it returns what it read of a line that did
// not end yet.
func (rw *recordWriter) copy(r io.Reader, stream string, carry []byte) (rest []byte, err error) {
	buf := make([]byte, taskReadSize)
	rest = carry
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if rest, err = rw.lines(append(rest, buf[:n]...), stream, false); err != nil {
				return nil, err
			}
		}
		if rerr == io.EOF {
			_, err = rw.lines(rest, stream, true)
			return nil, err
		}
		if rerr != nil {
			return rest, rerr
		}
	}
}

// lines writes the records of the complete lines in b and of the pieces
// of lines longer than maxLogLine, and returns the rest; final writes
// the rest too.
func (rw *recordWriter) lines(b []byte, stream string, final bool) (rest []byte, err error) {
	var out []byte
	at := rw.now().UTC()
	rec := func(line []byte, tag string) {
		out = at.AppendFormat(out, time.RFC3339Nano)
		out = append(out, ' ')
		out = append(out, stream...)
		out = append(out, ' ')
		out = append(out, tag...)
		out = append(out, ' ')
		out = append(out, line...)
		out = append(out, '\n')
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		switch {
		case i >= 0 && i <= maxLogLine:
			rec(b[:i], "F")
			b = b[i+1:]
			continue
		case len(b) > maxLogLine:
			rec(b[:maxLogLine], "P")
			b = b[maxLogLine:]
			continue
		case final:
			rec(b, "F")
			b = nil
		}
		break
	}
	if len(out) > 0 {
		rw.mu.Lock()
		_, err = rw.w.Write(out)
		rw.mu.Unlock()
	}
	// The rest is copied: b points into the caller's buffer.
	return append([]byte(nil), b...), err
}

// awaitExitedOutput waits, for a task whose process has exited, until
// its reader has written the last of its output (within logDrainTimeout
// and ctx): the exit is seen at once from containerd's event, possibly
// before the output still in the FIFOs is read, and a task's log read
// after its exit holds all of it, as docker logs does.
func (e *Executor) awaitExitedOutput(ctx context.Context, taskID string) {
	e.procs.mu.Lock()
	p, ok := e.procs.m[taskID]
	e.procs.mu.Unlock()
	if !ok || p.status != tasktypes.Status_STOPPED {
		return
	}
	e.logs.mu.Lock()
	l := e.logs.m[taskID]
	started := l != nil && l.started
	e.logs.mu.Unlock()
	if !started {
		return
	}
	t := e.cfg.Clock.NewTimer(logDrainTimeout)
	defer t.Stop()
	select {
	case <-l.done:
	case <-t.C():
	case <-ctx.Done():
	}
}
