package node

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"golang.org/x/net/websocket"
)

// chromiumPath is Debian's chromium (make deps installs it).
const chromiumPath = "/usr/bin/chromium"

// cdp drives one page of a headless Chromium over the DevTools protocol.
type cdp struct {
	ws *websocket.Conn
	id int
}

// startChromium opens url in a headless Chromium with a fresh profile and
// returns its page; the browser is killed when the test ends.
func startChromium(t *testing.T, url string) *cdp {
	t.Helper()
	profile := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, chromiumPath, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+profile, "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"--remote-allow-origins=http://127.0.0.1", url)
	// Its own process group, killed whole: the renderers and helpers go
	// with the browser.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	var port int
	if err := storetest.WaitFor(func() bool {
		b, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort"))
		if err != nil {
			return false
		}
		port, err = strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
		return err == nil && port > 0
	}, 60*time.Second); err != nil {
		t.Fatal("chromium never opened its DevTools port")
	}
	var page string
	if err := storetest.WaitFor(func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/json/list", port))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var targets []struct{ Type, URL, WebSocketDebuggerURL string }
		if json.NewDecoder(resp.Body).Decode(&targets) != nil {
			return false
		}
		for _, tg := range targets {
			if tg.Type == "page" && strings.HasPrefix(tg.URL, url) {
				page = tg.WebSocketDebuggerURL
			}
		}
		return page != ""
	}, 30*time.Second); err != nil {
		t.Fatal("chromium shows no page of the status page")
	}
	ws, err := websocket.Dial(page, "", "http://127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	return &cdp{ws: ws}
}

// call sends a DevTools command and returns its result.
func (c *cdp) call(t *testing.T, method string, params any) json.RawMessage {
	t.Helper()
	c.id++
	if err := websocket.JSON.Send(c.ws, map[string]any{"id": c.id, "method": method, "params": params}); err != nil {
		t.Fatal(err)
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var m struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct{ Message string }
		}
		if err := websocket.JSON.Receive(c.ws, &m); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if m.ID != c.id {
			continue // an event
		}
		if m.Error != nil {
			t.Fatalf("%s: %s", method, m.Error.Message)
		}
		return m.Result
	}
}

// eval returns a JavaScript expression's value as a string.
func (c *cdp) eval(t *testing.T, expr string) string {
	t.Helper()
	var r struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
	}
	_ = json.Unmarshal(c.call(t, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}), &r)
	if r.Result.Value == nil {
		return ""
	}
	return fmt.Sprint(r.Result.Value)
}

// The status page in a real headless Chromium: it renders the cluster's
// state, and when a sync completes it shows the new revision without a
// reload; it holds no secret. A screenshot is kept as the test's
// artifact ($GITORC_ARTIFACTS, else the test's log names it).
func TestStatusPageInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skip("needs chromium: run scripts/install-deps.sh")
	}
	const secret = "ui-hook-secret-canary"
	repo, first, dir, _, d := webhookManager(t, secret)
	ui := freeAddr(t)
	d.state.UIListen = ui
	startLoggedNode(t, d)
	socket := socketFile(dir)
	waitSync(t, socket, "synced the first commit", func(r controlapi.SyncReport) bool { return r.State.Revision == first })

	page := startChromium(t, "http://"+ui+"/")
	// The page marks itself once loaded: a reload would lose the mark.
	if err := storetest.WaitFor(func() bool {
		return page.eval(t, `document.getElementById("sync").dataset.revision || ""`) == first
	}, 60*time.Second); err != nil {
		t.Fatalf("the page never showed revision %s: %s", first, page.eval(t, "document.body.innerText"))
	}
	page.eval(t, `window.gitorcMark = "loaded-once"; "ok"`)

	second, err := repo.Commit("main", "second", zeroReplicaStack("busybox:2"))
	if err != nil {
		t.Fatal(err)
	}
	// gitorc sync --wait: fails (exit 1) when the sync failed or degraded.
	if req := syncNowAndWait(t, socket); req.Result == api.SyncFailed || req.Result == api.SyncDegraded {
		t.Fatalf("sync: %s: %s", req.Result, req.Message)
	}
	if err := storetest.WaitFor(func() bool {
		return page.eval(t, `document.getElementById("sync").dataset.revision || ""`) == second
	}, 60*time.Second); err != nil {
		t.Fatalf("the page never showed revision %s without a reload: %s", second, page.eval(t, "document.body.innerText"))
	}
	if mark := page.eval(t, `window.gitorcMark || ""`); mark != "loaded-once" {
		t.Errorf("the page reloaded (mark %q): it must update itself", mark)
	}
	text := page.eval(t, "document.body.innerText")
	if n := strings.Count(text, "\nsource\t"); n != 1 {
		t.Errorf("the sync table has %d source rows, want 1 (refreshed in place):\n%s", n, text)
	}
	if diff := page.eval(t, `document.getElementById("diff").textContent`); !strings.Contains(diff, "~ service app_web") ||
		!strings.Contains(diff, "busybox:2") {
		t.Errorf("the page's last diff is not the second commit's:\n%s", diff)
	}
	for _, want := range []string{"app_web\treplicated\t0/0\tbusybox:2", "sync\tsynced", "revision\t" + second[:12], "Last diff (" + second[:12]} {
		if !strings.Contains(text, want) {
			t.Errorf("the page lacks %q:\n%s", want, text)
		}
	}
	if html := page.eval(t, "document.documentElement.outerHTML"); strings.Contains(html, secret) {
		t.Error("the page holds the webhook secret")
	}
	var shot struct {
		Data string `json:"data"`
	}
	_ = json.Unmarshal(page.call(t, "Page.captureScreenshot", map[string]any{"format": "png"}), &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil || len(png) < 100 {
		t.Fatalf("screenshot: %d bytes, %v", len(png), err)
	}
	out := os.Getenv("GITORC_ARTIFACTS") // kept after the test
	if out == "" {
		out = t.TempDir()
	}
	path := filepath.Join(out, "status-page.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
