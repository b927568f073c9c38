package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// reach reports whether from can fetch a page served by to. (Debian's
// busybox 1.35 wget crashes with -T: the context bounds the wait instead.)
func reach(t *testing.T, from, to *Host) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	out, err := from.Run(ctx, "busybox", "wget", "-q", "-O", "-", fmt.Sprintf("http://%s:8080/", to.Addr))
	return err == nil && strings.Contains(out, "hello from "+to.Name)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestHostsCutHealPartition_Root(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs busybox-static")
	}
	nw := NewNetwork(t, 3)
	logs := t.TempDir()
	for _, h := range nw.Hosts {
		dir := filepath.Join(t.TempDir(), "www")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("hello from "+h.Name), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Start(logs, "busybox", "httpd", "-f", "-p", h.Addr.String()+":8080", "-h", dir); err != nil {
			t.Fatal(err)
		}
	}
	h1, h2, h3 := nw.Host(1), nw.Host(2), nw.Host(3)
	waitFor(t, 10*time.Second, "h1 to reach h2 and h3", func() bool { return reach(t, h1, h2) && reach(t, h1, h3) })

	h2.Cut()
	if reach(t, h1, h2) {
		t.Fatal("h1 reaches h2 while h2 is cut off")
	}
	if !reach(t, h1, h3) {
		t.Fatal("cutting h2 cut h3 too")
	}
	h2.Heal()
	waitFor(t, 10*time.Second, "h2 back", func() bool { return reach(t, h1, h2) })

	nw.Partition([]*Host{h1}, []*Host{h2, h3})
	if reach(t, h1, h2) || reach(t, h3, h1) {
		t.Fatal("traffic crosses the partition")
	}
	if !reach(t, h2, h3) {
		t.Fatal("hosts on one side of the partition cannot reach each other")
	}
	nw.HealPartition()
	waitFor(t, 10*time.Second, "the partition to heal", func() bool { return reach(t, h1, h2) && reach(t, h3, h1) })

	nw.Close()
	if left := nw.Leftovers(); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestIsolate_Root(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs busybox-static")
	}
	nw := NewNetwork(t, 3)
	logs := t.TempDir()
	serve := func(h *Host) {
		dir := filepath.Join(t.TempDir(), "www")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("hello from "+h.Name), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Start(logs, "busybox", "httpd", "-f", "-p", h.Addr.String()+":8080", "-h", dir); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range nw.Hosts {
		serve(h)
	}
	// The gateway (the root namespace) serves too: an isolated host still
	// reaches it.
	gw := filepath.Join(t.TempDir(), "gw")
	if err := os.MkdirAll(gw, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(gw, "index.html"), []byte("hello from gateway"), 0o644); err != nil {
		t.Fatal(err)
	}
	httpd := exec.Command("busybox", "httpd", "-f", "-p", nw.Gateway.String()+":8080", "-h", gw)
	if err := httpd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = httpd.Process.Kill(); _ = httpd.Wait() }()
	gateway := &Host{Name: "gateway", Addr: nw.Gateway}

	h1, h2, h3 := nw.Host(1), nw.Host(2), nw.Host(3)
	waitFor(t, 10*time.Second, "every host to reach every other", func() bool {
		return reach(t, h1, h2) && reach(t, h2, h3) && reach(t, h3, h1) && reach(t, h2, gateway)
	})

	iso := nw.Isolate(h2)
	if reach(t, h1, h2) || reach(t, h2, h3) {
		t.Fatal("traffic reaches an isolated host")
	}
	if !reach(t, h1, h3) || !reach(t, h2, gateway) {
		t.Fatal("isolating h2 cut other paths too")
	}
	// A second isolation holds beside the first; healing one leaves the
	// other.
	nw.Isolate(h3, h1)
	if reach(t, h1, h3) {
		t.Fatal("h1 reaches h3 while h3 is isolated from it")
	}
	iso.Heal()
	iso.Heal() // a no-op
	waitFor(t, 10*time.Second, "h2 back", func() bool { return reach(t, h1, h2) && reach(t, h2, h3) })
	if reach(t, h3, h1) {
		t.Fatal("healing h2 healed h3's isolation")
	}

	// Close removes the isolation still in place.
	nw.Close()
	if left := nw.Leftovers(); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
