package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// profiler is a system that can profile its daemon (gitorc: the pprof
// endpoints of its control socket).
type profiler interface {
	// profile writes the daemon's profile of kind ("profile": CPU,
	// "trace": execution trace) over the next d to path.
	profile(ctx context.Context, kind string, d time.Duration, path string) error
}

// profiled are the steps -profile records, with the profile and its
// window (from just before the step's command; the step's settle pause
// follows it).
var profiled = map[string]struct {
	kind   string
	window time.Duration
}{
	rowDeploy10: {"profile", 5 * time.Second},
	rowDeploy50: {"profile", 10 * time.Second},
	rowScale:    {"profile", 10 * time.Second},
	rowKill:     {"trace", 3 * time.Second},
}

// startProfile starts recording a step's profile into
// s.profileDir/<system>-r<round>/<step>.<kind>; wait returns once it is
// written (at the end of its window).
func (s *suite) startProfile(ctx context.Context, sys system, round int, label string) (wait func()) {
	p, ok := profiled[label]
	pr, can := sys.(profiler)
	if s.profileDir == "" || !ok || !can {
		return func() {}
	}
	dir := filepath.Join(s.profileDir, fmt.Sprintf("%s-r%d", sys.name(), round))
	name := strings.NewReplacer(" ", "-", "→", "to", "(", "", ")", "").Replace(label)
	path := filepath.Join(dir, name+"."+p.kind)
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := os.MkdirAll(dir, 0o755)
		if err == nil {
			err = pr.profile(ctx, p.kind, p.window, path)
		}
		if err != nil {
			fmt.Fprintf(s.log, "  profile of %s: %v\n", label, err)
		}
	}()
	return func() { <-done }
}

func (g *gitorcSystem) profile(ctx context.Context, kind string, d time.Duration, path string) error {
	// The profiles are the socket's debug endpoints, not the control API.
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", g.socket)
	}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		fmt.Sprintf("http://gitorc/debug/pprof/%s?seconds=%d", kind, int(d.Seconds())), nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", req.URL.Path, resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
