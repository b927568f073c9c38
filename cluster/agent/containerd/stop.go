package containerd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/moby/sys/signal"
	"golang.org/x/sys/unix"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/api"
)

// Stopping many tasks of one shim group at once (a stack rm) used to
// stall: each stop was a Kill call to the group's one shim, which runs
// `runc kill` while holding that process's lock, and the shim's exit
// handler holds the shim-wide lock while it waits for the exiting
// process's lock. Every task that exits on its SIGTERM while its own
// `runc kill` still runs (all of them, on a loaded node) therefore froze
// the whole shim for as long as that runc took: its State calls ran into
// containerd's 2 s deadline ("get state for …: context deadline
// exceeded"), its Wait calls did not return, and tasks long gone were
// "killed after the grace period".
//
// The executor therefore signals a task's init process itself, through a
// pidfd (no runc, no shim lock, no pid reuse), and learns that it exited
// from the pidfd too; the shim only reports the exit status. It falls
// back to the shim's Kill when it cannot identify the process.
const (
	// stopAckTimeout bounds a stop signal sent through the shim (the
	// fallback): a shim that does not acknowledge it in time is reported.
	stopAckTimeout = 10 * time.Second
	// exitReportTimeout bounds waiting for the shim to report the status
	// of a process that has exited (or was killed).
	exitReportTimeout = 30 * time.Second
)

// ErrStopNotAcknowledged: a stop signal or the exit it caused was not
// acknowledged by the task's shim in time.
var ErrStopNotAcknowledged = errors.New("stop not acknowledged")

func (e *Executor) stopTask(ctx context.Context, t client.Task, labels map[string]string) (agent.Exit, error) {
	st, err := t.Status(ctx)
	if err != nil {
		return agent.Exit{}, fmt.Errorf("stop: %w", err)
	}
	switch st.Status {
	case client.Stopped:
		e.procs.exited(t.ID(), t.Pid(), st.ExitStatus, st.ExitTime)
		return agent.Exit{ExitCode: int(st.ExitStatus)}, nil
	case client.Paused, client.Pausing:
		if err := t.Resume(ctx); err != nil {
			return agent.Exit{}, fmt.Errorf("stop: resume: %w", err)
		}
	}
	sig := syscall.SIGTERM
	if s := labels[labelStopSignal]; s != "" {
		if parsed, err := signal.ParseSignal(s); err == nil {
			sig = parsed
		}
	}
	grace := api.DefaultStopGracePeriod.Std()
	if g := labels[labelStopGrace]; g != "" {
		if d, err := time.ParseDuration(g); err == nil {
			grace = d
		}
	}
	wctx, cancelWait := context.WithCancel(ctx)
	defer cancelWait()
	exited, err := t.Wait(wctx)
	if err != nil {
		return agent.Exit{}, fmt.Errorf("stop: %w", err)
	}
	p := e.openInit(t)
	defer p.close()
	exit := agent.Exit{Stopped: true}
	if grace > 0 {
		if err := p.signal(ctx, sig); err != nil {
			return agent.Exit{}, err
		}
		timer := e.cfg.Clock.NewTimer(grace)
		defer timer.Stop()
		select {
		case s := <-exited:
			return e.exitOf(t, exit, s)
		case <-p.gone:
			return e.exitStatus(ctx, t, exit, exited)
		case <-ctx.Done():
			return agent.Exit{}, fmt.Errorf("stop: %w", ctx.Err())
		case <-timer.C():
		}
	}
	exit.Killed = true
	if err := p.signal(ctx, syscall.SIGKILL); err != nil {
		return agent.Exit{}, err
	}
	return e.exitStatus(ctx, t, exit, exited)
}

// exitStatus waits for the shim to report the exit status of a process
// that exited or was sent SIGKILL.
func (e *Executor) exitStatus(ctx context.Context, t client.Task, exit agent.Exit, exited <-chan client.ExitStatus) (agent.Exit, error) {
	timer := e.cfg.Clock.NewTimer(exitReportTimeout)
	defer timer.Stop()
	select {
	case s := <-exited:
		return e.exitOf(t, exit, s)
	case <-ctx.Done():
		return agent.Exit{}, fmt.Errorf("stop: %w", ctx.Err())
	case <-timer.C():
		return agent.Exit{}, fmt.Errorf("stop: %w: the shim reported no exit within %s", ErrStopNotAcknowledged, exitReportTimeout)
	}
}

// exitOf is the exit a stop saw, which the process cache records too
// (its exit event may come later than the caller's next observation).
func (e *Executor) exitOf(t client.Task, exit agent.Exit, s client.ExitStatus) (agent.Exit, error) {
	if err := s.Error(); err != nil {
		return agent.Exit{}, fmt.Errorf("stop: wait: %w", err)
	}
	exit.ExitCode = int(s.ExitCode())
	e.procs.exited(t.ID(), t.Pid(), s.ExitCode(), s.ExitTime())
	return exit, nil
}

// initProc is a task's init process as the executor signals it: through
// a pidfd when it could identify the process, else through the shim.
type initProc struct {
	t    client.Task
	fd   int           // pidfd, -1 without
	gone chan struct{} // closed once the process has exited (pidfd only)
	wake [2]int        // a pipe that ends the watcher
	wg   sync.WaitGroup
}

// openInit opens a pidfd on the task's init process. The pid is the
// container's as long as it is its namespace's PID 1 while the pidfd is
// open (a pidfd never follows a reused pid).
func (e *Executor) openInit(t client.Task) *initProc {
	p := &initProc{t: t, fd: -1}
	pid := int(t.Pid())
	if pid <= 0 {
		return p
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return p
	}
	if !isNamespaceInit(pid) || unix.PidfdSendSignal(fd, 0, nil, 0) != nil {
		_ = unix.Close(fd)
		return p
	}
	if err := unix.Pipe2(p.wake[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		_ = unix.Close(fd)
		return p
	}
	p.fd, p.gone = fd, make(chan struct{})
	p.wg.Add(1)
	go p.watch()
	return p
}

// watch closes gone when the process exits (its pidfd turns readable),
// until close wakes it.
func (p *initProc) watch() {
	defer p.wg.Done()
	fds := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}, {Fd: int32(p.wake[0]), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil, fds[1].Revents != 0:
			return
		case fds[0].Revents != 0:
			close(p.gone)
			return
		}
	}
}

// close ends the watcher, then closes the descriptors.
func (p *initProc) close() {
	if p.fd < 0 {
		return
	}
	_, _ = unix.Write(p.wake[1], []byte{0})
	p.wg.Wait()
	for _, fd := range []int{p.fd, p.wake[0], p.wake[1]} {
		_ = unix.Close(fd)
	}
}

// signal sends sig to the process: through its pidfd, else through the
// shim, which must acknowledge it within stopAckTimeout.
func (p *initProc) signal(ctx context.Context, sig syscall.Signal) error {
	if p.fd >= 0 {
		err := unix.PidfdSendSignal(p.fd, sig, nil, 0)
		if err == nil || errors.Is(err, unix.ESRCH) { // ESRCH: exited meanwhile
			return nil
		}
		return fmt.Errorf("stop: signal %s: %w", sig, err)
	}
	kctx, cancel := context.WithTimeout(ctx, stopAckTimeout)
	defer cancel()
	var opts []client.KillOpts
	if sig == syscall.SIGKILL {
		opts = append(opts, client.WithKillAll)
	}
	err := p.t.Kill(kctx, sig, opts...)
	switch {
	case err == nil || errdefs.IsNotFound(err):
		return nil
	case ctx.Err() == nil && kctx.Err() != nil:
		return fmt.Errorf("stop: signal %s: %w by the shim within %s", sig, ErrStopNotAcknowledged, stopAckTimeout)
	}
	return fmt.Errorf("stop: signal %s: %w", sig, err)
}

// isNamespaceInit reports whether pid is PID 1 of its own PID namespace,
// as a container's init process is.
func isNamespaceInit(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			return len(f) > 1 && f[len(f)-1] == "1"
		}
	}
	return false
}
