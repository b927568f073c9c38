package node

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/gitorc/gitorc/reconcile/notify"
	"github.com/gitorc/gitorc/reconcile/storecluster"
)

// hookReceiver is a notification receiver and a GitHub-like commit
// status API on loopback, recording what they get.
type hookReceiver struct {
	mu       sync.Mutex
	events   []notify.Event
	sigOK    []bool
	statuses []string // state:description of each commit status
	failURL  bool
	tries    int // posts to /events, failed ones too
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case r.URL.Path == "/events":
		h.tries++
		if h.failURL {
			http.Error(w, "receiver down", http.StatusBadGateway)
			return
		}
		var ev notify.Event
		_ = json.Unmarshal(b, &ev)
		h.events = append(h.events, ev)
		h.sigOK = append(h.sigOK, r.Header.Get(notify.SignatureHeader) == notify.Sign([]byte("notify-key"), b))
	case strings.HasPrefix(r.URL.Path, "/repos/ops/stacks/statuses/") && r.Header.Get("Authorization") == "Bearer gh-token":
		var st map[string]string
		_ = json.Unmarshal(b, &st)
		h.statuses = append(h.statuses, st["state"]+":"+strings.TrimPrefix(r.URL.Path, "/repos/ops/stacks/statuses/"))
	default:
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

// A daemon following a repository tells of each sync: a signed JSON
// event to the notify URL, and the commit's status (pending, then
// success) on a GitHub-like API; a receiver that fails is retried,
// reported in the sync status (gitorc status), and holds nothing up.
func TestNotificationsOnDaemon(t *testing.T) {
	old := notifyBackoff
	notifyBackoff = 10 * time.Millisecond
	t.Cleanup(func() { notifyBackoff = old })
	repo, first, dir, _, d := webhookManager(t, "hook-secret")
	h := &hookReceiver{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	startLoggedNode(t, d)
	socket := socketFile(dir)
	waitSync(t, socket, "synced the first commit", func(r controlapi.SyncReport) bool {
		return r.State.Revision == first && r.State.Phase == api.SyncSynced
	})

	// What gitorc source set --notify URL --notify-secret-file F
	// --commit-status github --commit-status-api A --commit-status-repo R
	// --commit-status-token-file F sends.
	hookURL, key, gh, ghAPI, ghRepo, token := srv.URL+"/events", "notify-key", "github", srv.URL, "ops/stacks", "gh-token"
	src, err := client.Unix(socket).SetSource(context.Background(), controlapi.SourcePatch{NotifyURL: &hookURL, NotifySecret: &key,
		CommitStatus: &gh, CommitStatusAPI: &ghAPI, CommitStatusRepo: &ghRepo, CommitStatusToken: &token})
	if n := src.Source.Notify; err != nil || n == nil || n.URL != hookURL || !src.NotifySecretSet ||
		n.CommitStatus != "github" || n.CommitStatusRepo != "ops/stacks" || !src.CommitStatusTokenSet {
		t.Fatalf("source set: %+v (notify %+v) %v", src, n, err)
	}
	second, err := repo.Commit("main", "second", zeroReplicaStack("busybox:2"))
	if err != nil {
		t.Fatal(err)
	}
	manualSync(t, socket)
	if err := storetest.WaitFor(func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.events) == 1 && len(h.statuses) == 2
	}, 30*time.Second); err != nil {
		h.mu.Lock()
		t.Fatalf("events %+v, statuses %v", h.events, h.statuses)
	}
	h.mu.Lock()
	ev, sigOK, statuses := h.events[0], h.sigOK[0], h.statuses
	h.failURL = true
	h.mu.Unlock()
	if ev.Event != "synced" || ev.Revision != second || ev.Trigger != "manual" || !strings.Contains(ev.Message, "synced") || !sigOK ||
		strings.Join(ev.Services, " ") != "app_web" {
		t.Errorf("event %+v (signature ok %v)", ev, sigOK)
	}
	if want := []string{"pending:" + second, "success:" + second}; strings.Join(statuses, " ") != strings.Join(want, " ") {
		t.Errorf("commit statuses %v, want %v", statuses, want)
	}

	// The receiver fails: the sync still completes, and status says so.
	third, err := repo.Commit("main", "third", zeroReplicaStack("busybox:3"))
	if err != nil {
		t.Fatal(err)
	}
	manualSync(t, socket)
	var failed api.NotifyDelivery
	rep := waitSync(t, socket, "a failed notification reported", func(r controlapi.SyncReport) bool {
		for _, n := range r.State.Notifications {
			if n.Target == "url" && n.Revision == third && n.Attempts > 1 && strings.Contains(n.Error, "502 Bad Gateway receiver down") {
				failed = n
				return true
			}
		}
		return false
	})
	if rep.State.Revision != third || rep.State.Phase != api.SyncSynced {
		t.Errorf("the sync did not complete: %+v", rep.State)
	}
	// gitorc status prints the error after "FAILED: ".
	if !strings.HasPrefix(failed.Error, "POST "+srv.URL+"/events: 502 Bad Gateway") {
		t.Errorf("the failed notification does not say which POST failed: %q", failed.Error)
	}
}

// A notification the leader could not deliver before it stopped is owed
// to the next leader, which tells it; what was told is not told again.
func TestNotificationOwedAcrossRestart(t *testing.T) {
	old := notifyBackoff
	notifyBackoff = time.Hour // the first leader waits to retry until it stops
	t.Cleanup(func() { notifyBackoff = old })
	repo, first, dir, _, d := webhookManager(t, "hook-secret")
	h := &hookReceiver{failURL: true}
	srv := httptest.NewServer(h)
	defer srv.Close()
	logs := &strings.Builder{}
	start := func(d *daemon) (stop func()) {
		d.log = slog.New(slog.NewTextHandler(&syncWriter{w: logs}, nil))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.run(ctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("daemon: %v", err)
			}
		}
	}
	defer func() {
		if t.Failed() {
			t.Logf("daemon logs:\n%s", logs.String())
		}
	}()
	stop := start(d)
	socket := socketFile(dir)
	waitSync(t, socket, "synced the first commit", func(r controlapi.SyncReport) bool {
		return r.State.Revision == first && r.State.Phase == api.SyncSynced
	})
	hookURL := srv.URL + "/events"
	if _, err := client.Unix(socket).SetSource(context.Background(), controlapi.SourcePatch{NotifyURL: &hookURL}); err != nil {
		t.Fatalf("source set --notify: %v", err)
	}
	second, err := repo.Commit("main", "second", zeroReplicaStack("busybox:2"))
	if err != nil {
		t.Fatal(err)
	}
	manualSync(t, socket)
	tries := func() int { h.mu.Lock(); defer h.mu.Unlock(); return h.tries }
	if err := storetest.WaitFor(func() bool { return tries() == 1 }, 30*time.Second); err != nil {
		t.Fatalf("the synced event was tried %d times, want once before the leader stops", tries())
	}
	stop()

	h.mu.Lock()
	h.failURL = false
	h.mu.Unlock()
	notifyBackoff = 10 * time.Millisecond
	st, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loadPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	again := &daemon{dir: dir, state: st, pki: p}
	defer start(again)()
	told := func() []api.SyncRecord {
		s := again.storeRef.Load()
		if s == nil {
			return nil
		}
		recs, _ := storecluster.New(s).History(context.Background())
		var out []api.SyncRecord
		for _, r := range recs {
			if r.Revision == second && r.Notified == "synced" {
				out = append(out, r)
			}
		}
		return out
	}
	if err := storetest.WaitFor(func() bool { return len(told()) == 1 }, 60*time.Second); err != nil {
		t.Fatal("the restarted leader never told the owed notification")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.events) != 1 || h.events[0].Revision != second || h.events[0].Event != "synced" {
		st, _ := storecluster.New(again.storeRef.Load()).Sync(context.Background())
		recs, _ := storecluster.New(again.storeRef.Load()).History(context.Background())
		t.Errorf("events %+v: want the second commit's synced, once; notify %+v; history %+v", h.events, st.Source.Notify, recs)
	}
}

// The leader's notifier and the autolock follower end when their context
// does, with no event to wake them: a leader that steps down waits for
// every controller to stop before it can start them again when it leads
// again (it waited for the next sync record, and led with no controller).
func TestWatchersStopWithTheirContext(t *testing.T) {
	_, first, dir, _, d := webhookManager(t, "hook-secret")
	startLoggedNode(t, d)
	waitSync(t, socketFile(dir), "synced the first commit", func(r controlapi.SyncReport) bool { return r.State.Revision == first })
	for name, run := range map[string]func(context.Context) error{"notifier": d.runNotifier, "autolock": d.followUnlockKey} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- run(ctx) }()
		// Once it waits on its watch (its goroutine parked in a receive
		// or a select under it), the context ends.
		fn := map[string]string{"notifier": "runNotifier", "autolock": "followUnlockKey"}[name]
		if err := storetest.WaitFor(func() bool { return parkedIn(fn) }, 30*time.Second); err != nil {
			t.Fatalf("the %s never waited on its watch", name)
		}
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("the %s did not stop with its context", name)
		}
	}
}

// parkedIn reports whether a goroutine running fn waits on a channel.
func parkedIn(fn string) bool {
	buf := make([]byte, 1<<22)
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		head, _, _ := strings.Cut(g, "\n")
		if strings.Contains(g, "."+fn+"(") && (strings.Contains(head, "[select") || strings.Contains(head, "[chan receive")) {
			return true
		}
	}
	return false
}
