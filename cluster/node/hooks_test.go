package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/gitorc/gitorc/e2e/gitserver"
	"github.com/gitorc/gitorc/reconcile/storecluster"
	"github.com/gitorc/gitorc/reconcile/webhook"
)

// storedFieldBound is the most of any field a delivery kept on the
// replicated sync state may hold (webhook.MaxFieldBytes).
const storedFieldBound = 512

// endless is a reader of zeros that allocates nothing.
type endless struct{}

func (endless) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// The daemon's webhook listener under hostile deliveries: 16 concurrent
// unsigned 24 MiB posts are refused without their bodies being read (the
// daemon's allocations during them stay far below their size; before, it
// read them whole: 748 MB resident), a huge path does not end up in the
// replicated sync state, and a replayed delivery is acted on once.
func TestWebhookListenerHostileDeliveries(t *testing.T) {
	ctx := context.Background()
	const secret = "hostile-hook-key"
	repo, first, dir, hookAddr, d := webhookManager(t, secret)
	startLoggedNode(t, d)
	socket := socketFile(dir)
	waitSync(t, socket, "synced the first commit", func(r controlapi.SyncReport) bool {
		return r.State.Revision == first && r.State.Phase == api.SyncSynced
	})
	base := "http://" + hookAddr

	// 16 unsigned 24 MiB posts at once.
	const n, size = 16, 24 << 20
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	codes := make(chan int, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, base+"/hooks/github", io.LimitReader(endless{}, size))
			req.ContentLength = size
			req.Header.Set(webhook.HeaderGitHubEvent, "push")
			resp, err := client.Do(req)
			if err != nil {
				codes <- 0 // cut off unread: refused before the body
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	close(codes)
	for c := range codes {
		if c != http.StatusUnauthorized && c != 0 {
			t.Errorf("unsigned post answered %d, want 401", c)
		}
	}
	grew := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d unsigned posts of %d MiB: the daemon allocated %.1f MiB meanwhile", n, size>>20, float64(grew)/(1<<20))
	// The daemon allocates for itself meanwhile (Raft, status reads); the
	// posts' bodies alone would be 384 MiB.
	if grew > 128<<20 {
		t.Errorf("the daemon allocated %d MiB during %d unsigned posts of %d MiB, want well under their size", grew>>20, n, size>>20)
	}

	// A huge path: refused, and what the sync state keeps of it is
	// bounded. Refusals are kept at most once a second, so post until one
	// is kept (bounded: WaitFor's deadline).
	huge := strings.Repeat("p", 50<<10)
	if err := storetest.WaitFor(func() bool {
		resp, err := http.Post(base+"/hooks/"+huge, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("unknown provider answered %d", resp.StatusCode)
		}
		for _, dl := range statusOf(t, socket).State.Deliveries {
			if dl.Status == http.StatusNotFound {
				return true
			}
		}
		return false
	}, 30*time.Second); err != nil {
		t.Fatal("no refused delivery to an unknown provider was kept on the sync state")
	}

	// A replayed delivery: the same X-GitHub-Delivery twice.
	second, err := repo.Commit("main", "second", zeroReplicaStack("busybox:2"))
	if err != nil {
		t.Fatal(err)
	}
	body := gitserver.GitHubPush("main", second)
	deliver := func() (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/hooks/github", bytes.NewReader(body))
		req.Header.Set(webhook.HeaderGitHubEvent, "push")
		req.Header.Set("X-GitHub-Delivery", "replayed-1")
		req.Header.Set(webhook.HeaderHubSignature256, webhook.Sign([]byte(secret), body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, msg := deliver(); code != http.StatusAccepted || !strings.Contains(msg, "sync queued") {
		t.Fatalf("delivery: %d %s", code, msg)
	}
	if code, msg := deliver(); code != http.StatusAccepted || !strings.Contains(msg, "already received") {
		t.Errorf("replayed delivery: %d %s, want 202 ignored", code, msg)
	}
	rep := statusOf(t, socket)
	webhookRequests := 0
	for _, r := range rep.State.Requests {
		if r.Trigger == api.TriggerWebhook {
			webhookRequests++
		}
	}
	if webhookRequests != 1 {
		t.Errorf("%d webhook sync requests, want 1: %+v", webhookRequests, rep.State.Requests)
	}
	for _, dl := range rep.State.Deliveries {
		for name, v := range map[string]string{"provider": dl.Provider, "event": dl.Event, "delivery": dl.Delivery, "ref": dl.Ref,
			"commit": dl.Commit, "outcome": dl.Outcome} {
			if len(v) > storedFieldBound {
				t.Errorf("a delivery's %s of %d bytes is kept on the sync state", name, len(v))
			}
		}
	}

	// Another manager's handler does not remember this one's deliveries:
	// the replicated state does.
	h := &hooks{d: d, cl: storecluster.New(d.store), log: d.log}
	err = h.Trigger(ctx, webhook.Event{Provider: webhook.GitHub, Kind: webhook.KindPush, Name: "push", Ref: "refs/heads/main",
		Commit: second, Delivery: "replayed-1"})
	var ign *webhook.IgnoredError
	if !errors.As(err, &ign) || !strings.Contains(err.Error(), "already received by node "+d.state.ID) {
		t.Errorf("a delivery another manager acted on: %v, want ignored as already received", err)
	}
}
