package containerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gitorc/gitorc/cluster/agent"
)

// daemon is a containerd process the executor started and supervises, with
// its config, root, state and socket in one directory (as k3s does).
type daemon struct {
	dir   string
	bin   string
	log   *slog.Logger
	clock agent.Clock

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exited
}

func newDaemon(dir, bin string, log *slog.Logger, clock agent.Clock) *daemon {
	return &daemon{dir: dir, bin: bin, log: log, clock: clock}
}

func (d *daemon) socket() string { return filepath.Join(d.dir, "containerd.sock") }

// config is containerd 1.6's version 2 config: every path under dir, CRI
// off (gitorc is its only client), no metrics or debug listener.
func (d *daemon) config() string {
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	return `version = 2
root = ` + q(filepath.Join(d.dir, "root")) + `
state = ` + q(filepath.Join(d.dir, "state")) + `
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = ` + q(d.socket()) + `

[plugins."io.containerd.internal.v1.opt"]
  path = ` + q(filepath.Join(d.dir, "opt")) + `
`
}

// start launches containerd and waits until its socket accepts connections.
func (d *daemon) start(ctx context.Context, timeout time.Duration) error {
	bin, err := exec.LookPath(d.bin)
	if err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	if err := os.MkdirAll(d.dir, 0o711); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	cfg := filepath.Join(d.dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(d.config()), 0o600); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(d.dir, "containerd.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a terminal's ^C reaches the agent, which
	// stops containerd in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	d.cmd, d.done = cmd, done
	d.log.Info("started containerd", "pid", cmd.Process.Pid, "socket", d.socket())
	if err := os.WriteFile(d.pidFile(), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		d.log.Warn("write containerd's pid file", "err", err)
	}

	deadline := d.clock.Now().Add(timeout)
	for {
		if reachable(d.socket()) {
			return nil
		}
		if d.clock.Now().After(deadline) {
			_ = d.stop(5 * time.Second)
			return fmt.Errorf("start containerd: socket %s not ready after %s (see %s)", d.socket(), timeout, filepath.Join(d.dir, "containerd.log"))
		}
		t := d.clock.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			_ = d.stop(5 * time.Second)
			return ctx.Err()
		case <-done:
			t.Stop()
			return fmt.Errorf("start containerd: exited: %s (see %s)", cmd.ProcessState, filepath.Join(d.dir, "containerd.log"))
		case <-t.C():
		}
	}
}

func (d *daemon) pidFile() string { return filepath.Join(d.dir, "containerd.pid") }

// stopOrphan stops the containerd an earlier run of this executor started
// and left behind (it was killed: its child outlived it), so that this
// run starts and supervises its own; its containers keep running in their
// shims and the new containerd adopts them. It reports whether it found
// and stopped one; a process that is not that containerd is left alone.
func (d *daemon) stopOrphan(grace time.Duration) bool {
	b, err := os.ReadFile(d.pidFile())
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), filepath.Join(d.dir, "config.toml")) {
		return false
	}
	if syscall.Kill(pid, syscall.SIGTERM) != nil {
		return false
	}
	deadline := d.clock.Now().Add(grace)
	for syscall.Kill(pid, 0) == nil {
		if d.clock.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		t := d.clock.NewTimer(20 * time.Millisecond)
		<-t.C()
	}
	d.log.Info("stopped the containerd a killed run left behind", "pid", pid)
	return true
}

// stop sends SIGTERM, then SIGKILL after grace. Containers keep running in
// their shims; a containerd started later on the same root adopts them.
func (d *daemon) stop(grace time.Duration) error {
	if d.cmd == nil {
		return nil
	}
	select {
	case <-d.done:
		return nil
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	t := d.clock.NewTimer(grace)
	defer t.Stop()
	select {
	case <-d.done:
		return nil
	case <-t.C():
	}
	_ = d.cmd.Process.Kill()
	<-d.done
	return errors.New("stop containerd: killed after the grace period")
}

// supervise restarts containerd whenever it exits, until ctx ends; then it
// stops it.
func (d *daemon) supervise(ctx context.Context, timeout time.Duration, restarted func()) {
	backoff := time.Second
	for {
		select {
		case <-ctx.Done():
			if err := d.stop(10 * time.Second); err != nil {
				d.log.Warn("stop containerd", "err", err)
			}
			return
		case <-d.done:
		}
		d.log.Warn("containerd exited; restarting", "state", d.cmd.ProcessState.String(), "backoff", backoff)
		t := d.clock.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		if err := d.start(ctx, timeout); err != nil {
			d.log.Warn("restart containerd", "err", err)
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		restarted()
	}
}

// reachable reports whether a unix socket accepts connections.
func reachable(sock string) bool {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}
