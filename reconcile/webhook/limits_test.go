package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// zeros is an endless reader of zero bytes that allocates nothing, so a
// client in this process can post large bodies without holding them.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// answers collects the status of every delivery the handler answered.
type answers struct {
	mu     sync.Mutex
	status []int
	resps  []Response
}

func (a *answers) onDelivery(_ context.Context, status int, resp Response) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status, a.resps = append(a.status, status), append(a.resps, resp)
}

func (a *answers) count(status int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, s := range a.status {
		if s == status {
			n++
		}
	}
	return n
}

// postLarge posts n concurrent deliveries of size bytes each to url,
// streamed (chunked when chunked is set, else with a Content-Length),
// and waits for all of them. Client errors are tolerated: a server that
// refuses before reading may close the connection under the writer; the
// handler's answers are what the caller checks.
func postLarge(t *testing.T, url string, n int, size int64, chunked bool, header http.Header) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body io.Reader = io.LimitReader(zeros{}, size)
			if chunked {
				body = io.MultiReader(body) // hides the size: sent chunked
			}
			req, err := http.NewRequest(http.MethodPost, url, body)
			if err != nil {
				t.Error(err)
				return
			}
			if !chunked {
				req.ContentLength = size
			}
			for k, v := range header {
				req.Header[k] = v
			}
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	wg.Wait()
}

// The heap of a listener that takes N concurrent large deliveries stays
// bounded: an unsigned or malformed-signature post is refused before its
// body is read, and a well-formed but wrong one reads at most MaxBody.
// (Before the fix, 16 unsigned 24 MB posts were read whole: the daemon
// went from 33 to 748 MB.) TotalAlloc counts every byte allocated during
// the posts, whenever the collector ran, so the measure does not depend
// on timing.
func TestLargeDeliveriesHeapBounded(t *testing.T) {
	const n, size = 16, 24 << 20
	for _, tc := range []struct {
		name    string
		header  http.Header
		chunked bool
		status  int
		// busy: deliveries read concurrently may also be answered 503
		// (more than MaxInFlight at once).
		busy bool
		// bound is the most the server may allocate for all n posts.
		bound uint64
	}{
		{name: "unsigned with length", header: hdr(HeaderGitHubEvent, "push"), status: http.StatusUnauthorized, bound: 16 << 20},
		{name: "unsigned chunked", header: hdr(HeaderGitHubEvent, "push"), chunked: true, status: http.StatusUnauthorized, bound: 16 << 20},
		{name: "malformed signature", header: hdr(HeaderGitHubEvent, "push", HeaderHubSignature256, "sha256=zz"), chunked: true,
			status: http.StatusUnauthorized, bound: 16 << 20},
		{name: "gitlab without token", header: hdr(HeaderGitLabEvent, "Push Hook"), chunked: true, status: http.StatusUnauthorized, bound: 16 << 20},
		{name: "wrong signature too long", header: hdr(HeaderGitHubEvent, "push", HeaderHubSignature256, Sign([]byte("wrong"), nil)),
			status: http.StatusRequestEntityTooLarge, bound: 16 << 20},
		// Chunked, so the size shows only while reading: at most the
		// default 1 MiB is read of each (with io.ReadAll's growth, ~2 MiB).
		{name: "wrong signature chunked", header: hdr(HeaderGitHubEvent, "push", HeaderHubSignature256, Sign([]byte("wrong"), nil)),
			chunked: true, status: http.StatusRequestEntityTooLarge, busy: true, bound: n*4<<20 + 16<<20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a answers
			h, err := NewHandler(Config{Secret: []byte("s3"), Ref: "main", OnDelivery: a.onDelivery}, &recorder{})
			if err != nil {
				t.Fatal(err)
			}
			mux := http.NewServeMux()
			mux.Handle("/hooks/{provider}", h)
			srv := httptest.NewServer(mux)
			defer srv.Close()
			provider := "github"
			if tc.header.Get(HeaderGitLabEvent) != "" {
				provider = "gitlab"
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			postLarge(t, srv.URL+"/hooks/"+provider, n, size, tc.chunked, tc.header)
			runtime.ReadMemStats(&after)
			grew := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d posts of %d MiB: %.1f MiB allocated, heap in use %.1f -> %.1f MiB", n, size>>20,
				float64(grew)/(1<<20), float64(before.HeapInuse)/(1<<20), float64(after.HeapInuse)/(1<<20))
			got := a.count(tc.status)
			if tc.busy {
				got += a.count(http.StatusServiceUnavailable)
			}
			if got != n {
				t.Errorf("%d of %d deliveries answered %d (answers %v)", got, n, tc.status, a.status)
			}
			if grew > tc.bound {
				t.Errorf("the listener allocated %d MiB for %d posts, want at most %d MiB", grew>>20, n, tc.bound>>20)
			}
		})
	}
}

// A replayed delivery (same X-GitHub-Delivery) is acknowledged and not
// acted on twice; one whose trigger failed may be retried.
func TestReplayedDeliveryNotActedOnTwice(t *testing.T) {
	secret := []byte("s3")
	body := sample(t, "github_push.json")
	rec := &recorder{}
	h, err := NewHandler(Config{Secret: secret, Ref: "main"}, rec)
	if err != nil {
		t.Fatal(err)
	}
	post := func(delivery string) (int, Response) {
		req := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(body))
		req.Header.Set(HeaderGitHubEvent, "push")
		req.Header.Set("X-GitHub-Delivery", delivery)
		req.Header.Set(HeaderHubSignature256, Sign(secret, body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var resp Response
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("body %q: %v", w.Body, err)
		}
		return w.Code, resp
	}
	if code, resp := post("d-42"); code != http.StatusAccepted || resp.Action != ActionQueued {
		t.Fatalf("first delivery: %d %+v", code, resp)
	}
	code, resp := post("d-42")
	if code != http.StatusAccepted || resp.Action != ActionIgnored || !strings.Contains(resp.Message, "d-42 was already received") {
		t.Errorf("replayed delivery: %d %+v, want 202 ignored as already received", code, resp)
	}
	if len(rec.events) != 1 {
		t.Errorf("the push was acted on %d times, want once", len(rec.events))
	}
	// Another delivery of the same push is a new one.
	if code, resp := post("d-43"); code != http.StatusAccepted || resp.Action != ActionQueued {
		t.Errorf("another delivery: %d %+v", code, resp)
	}
	// A delivery that could not be queued is not remembered: the sender
	// may retry it.
	rec.err = fmt.Errorf("not leader")
	if code, _ := post("d-44"); code != http.StatusServiceUnavailable {
		t.Fatalf("delivery with a failing trigger: %d", code)
	}
	rec.err = nil
	if code, resp := post("d-44"); code != http.StatusAccepted || resp.Action != ActionQueued {
		t.Errorf("retried delivery: %d %+v, want queued", code, resp)
	}
	if len(rec.events) != 3 {
		t.Errorf("%d pushes acted on, want 3", len(rec.events))
	}
}

// blockingTrigger holds every push until released, and counts those in it.
type blockingTrigger struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	held    int
	max     int // hold at most this many; the next ones pass at once
}

func (b *blockingTrigger) Trigger(ctx context.Context, _ Event) error {
	b.mu.Lock()
	hold := b.held < b.max
	if hold {
		b.held++
	}
	b.mu.Unlock()
	if !hold {
		return nil
	}
	b.entered <- struct{}{}
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return nil
}

// At most MaxInFlight deliveries are served at once (default 8); the
// next one is answered 503 at once, with Retry-After.
func TestConcurrentDeliveriesLimited(t *testing.T) {
	secret := []byte("s3")
	body := sample(t, "github_push.json")
	const limit = 8
	bt := &blockingTrigger{entered: make(chan struct{}, limit), release: make(chan struct{}), max: limit}
	var a answers
	h, err := NewHandler(Config{Secret: secret, Ref: "main", OnDelivery: a.onDelivery}, bt)
	if err != nil {
		t.Fatal(err)
	}
	post := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(body))
		req.Header.Set(HeaderGitHubEvent, "push")
		req.Header.Set(HeaderHubSignature256, Sign(secret, body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	released := false
	defer func() {
		if !released {
			close(bt.release)
		}
	}()
	for range limit {
		wg.Add(1)
		go func() { defer wg.Done(); post() }()
	}
	for range limit {
		<-bt.entered
	}
	w := post()
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("delivery beyond %d in flight: %d (Retry-After %q) %s, want 503 with Retry-After", limit, w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	close(bt.release)
	released = true
	wg.Wait()
	if got := a.count(http.StatusAccepted); got != limit {
		t.Errorf("%d deliveries in flight were queued, want %d", got, limit)
	}
	// Once they are done, a slot is free again.
	if w := post(); w.Code != http.StatusAccepted {
		t.Errorf("delivery after the others ended: %d %s", w.Code, w.Body)
	}
}

// What a refused delivery answers and hands to OnDelivery (which the
// daemon keeps in the replicated sync state) is bounded, whatever the
// sender puts in the path or headers.
func TestAnswersBounded(t *testing.T) {
	secret := []byte("s3")
	huge := strings.Repeat("x", 60<<10)
	issues := sample(t, "github_issues.json")
	for _, tc := range []struct {
		name   string
		path   string
		header http.Header
		body   []byte
	}{
		{name: "unknown provider", path: "/hooks/" + huge},
		{name: "event header", path: "/hooks/github", body: issues,
			header: hdr(HeaderGitHubEvent, huge, "X-GitHub-Delivery", huge, HeaderHubSignature256, Sign(secret, issues))},
		{name: "bad payload", path: "/hooks/generic", body: []byte(`{"ref":"` + huge + `"}`),
			header: hdr(HeaderGitorcSignature, Sign(secret, []byte(`{"ref":"`+huge+`"}`)))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a answers
			h, err := NewHandler(Config{Secret: secret, Ref: "main", OnDelivery: a.onDelivery}, &recorder{})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(tc.body))
			req.URL.Path = tc.path
			for k, v := range tc.header {
				req.Header[k] = v
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Body.Len() > 4<<10 {
				t.Errorf("answer of %d bytes", w.Body.Len())
			}
			if len(a.resps) != 1 {
				t.Fatalf("OnDelivery called %d times", len(a.resps))
			}
			r := a.resps[0]
			for name, v := range map[string]string{"provider": r.Provider, "event": r.Event, "ref": r.Ref, "commit": r.Commit,
				"delivery": r.Delivery, "message": r.Message} {
				if len(v) > MaxFieldBytes {
					t.Errorf("%s of %d bytes kept, want at most %d", name, len(v), MaxFieldBytes)
				}
			}
		})
	}
}

// CheckHeader refuses what Verify would refuse for a missing or
// malformed header, and passes every well-formed one (whatever its
// value: only Verify knows the secret).
func TestCheckHeader(t *testing.T) {
	good := Sign([]byte("any"), nil)
	for _, tc := range []struct {
		p       Provider
		kv      []string
		wantErr string
	}{
		{GitHub, []string{HeaderHubSignature256, good}, ""},
		{GitHub, nil, "github webhook: missing X-Hub-Signature-256 header"},
		{GitHub, []string{HeaderHubSignature256, "sha256=zz"}, "github webhook: X-Hub-Signature-256 is not sha256=<hex>"},
		{GitHub, []string{HeaderHubSignature256, good[7:]}, "github webhook: X-Hub-Signature-256 is not sha256=<hex>"},
		{GitHub, []string{HeaderHubSignature256, good + "00"}, "github webhook: X-Hub-Signature-256 is not sha256=<hex>"},
		{Gitea, []string{HeaderHubSignature256, good}, ""},
		{Gitea, []string{HeaderGiteaSignature, good[7:]}, ""},
		{Gitea, []string{HeaderGiteaSignature, "nothex"}, "gitea webhook: X-Hub-Signature-256 is not sha256=<hex>"},
		{Gitea, nil, "gitea webhook: missing X-Hub-Signature-256 header"},
		{GitLab, []string{HeaderGitLabToken, "t"}, ""},
		{GitLab, nil, "gitlab webhook: missing X-Gitlab-Token header"},
		{GitLab, []string{HeaderGitLabToken, strings.Repeat("t", MaxTokenBytes+1)}, "gitlab webhook: X-Gitlab-Token is longer than any token"},
		{Generic, []string{HeaderGitorcSignature, good}, ""},
		{Generic, []string{HeaderHubSignature256, good}, "generic webhook: missing X-Gitorc-Signature header"},
	} {
		err := CheckHeader(tc.p, hdr(tc.kv...))
		got := ""
		if err != nil {
			got = err.Error()
			if !errors.Is(err, ErrUnauthorized) {
				t.Errorf("%s %v: %v is not ErrUnauthorized", tc.p, tc.kv, err)
			}
		}
		if got != tc.wantErr {
			t.Errorf("CheckHeader(%s, %.40v) = %q, want %q", tc.p, tc.kv, got, tc.wantErr)
		}
	}
}

// lines is a slog handler that keeps every record.
type lines struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *lines) Enabled(context.Context, slog.Level) bool { return true }
func (l *lines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
	return nil
}
func (l *lines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *lines) WithGroup(string) slog.Handler      { return l }

func (l *lines) dropped() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int64
	for _, r := range l.recs {
		n := int64(0)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == logKeyDropped {
				n = a.Value.Int64()
			}
			return true
		})
		out = append(out, n)
	}
	return out
}

// Refused deliveries are logged at most once a second per cause (status
// and provider), with the count of lines dropped since the last one;
// accepted ones always.
func TestRefusalLogThrottled(t *testing.T) {
	clock := newFakeClock()
	var l lines
	h, err := NewHandler(Config{Secret: []byte("s3"), Ref: "main", Clock: clock, Logger: slog.New(&l)}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	post := func(path string) {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader("{}"))
		req.Header.Set(HeaderGitHubEvent, "push")
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	for range 100 {
		post("/hooks/github") // unsigned: 401
	}
	post("/hooks/gitea")      // another cause
	post("/hooks/" + "nope1") // another: 404 unknown
	post("/hooks/" + "nope2") // the same cause as nope1
	if got, want := l.dropped(), []int64{0, 0, 0}; !cmp.Equal(got, want) {
		t.Fatalf("lines logged (their dropped counts) = %v, want %v", got, want)
	}
	clock.Advance(logEvery)
	post("/hooks/github")
	post("/hooks/nope3")
	if got, want := l.dropped(), []int64{0, 0, 0, 99, 1}; !cmp.Equal(got, want) {
		t.Fatalf("lines logged after a second (their dropped counts) = %v, want %v", got, want)
	}
}

// A delivery ID is remembered for the replay window only.
func TestReplayWindow(t *testing.T) {
	clock := newFakeClock()
	secret := []byte("s3")
	body := sample(t, "gitlab_push.json")
	rec := &recorder{}
	h, err := NewHandler(Config{Secret: secret, Ref: "main", Clock: clock, ReplayWindow: time.Hour}, rec)
	if err != nil {
		t.Fatal(err)
	}
	post := func() Response {
		req := httptest.NewRequest(http.MethodPost, "/hooks/gitlab", bytes.NewReader(body))
		req.Header.Set(HeaderGitLabEvent, "Push Hook")
		req.Header.Set(HeaderGitLabToken, string(secret))
		req.Header.Set("X-Gitlab-Event-UUID", "u-1")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var resp Response
		_ = json.Unmarshal(w.Body.Bytes(), &resp)
		return resp
	}
	for i, want := range []string{ActionQueued, ActionIgnored} {
		if got := post(); got.Action != want {
			t.Fatalf("delivery %d: %+v, want %s", i, got, want)
		}
	}
	clock.Advance(time.Hour)
	if got := post(); got.Action != ActionQueued {
		t.Fatalf("delivery after the window: %+v, want queued", got)
	}
	if len(rec.events) != 2 {
		t.Fatalf("%d pushes acted on, want 2", len(rec.events))
	}
}

// The replay memory is bounded: the oldest IDs go first.
func TestReplaysBounded(t *testing.T) {
	r := replays{window: time.Hour}
	now := time.Unix(0, 0)
	for i := range maxRemembered + 10 {
		if _, fresh := r.reserve(fmt.Sprint(i), now); !fresh {
			t.Fatalf("id %d seen before", i)
		}
	}
	if len(r.seen) > maxRemembered || len(r.order) > maxRemembered {
		t.Fatalf("%d ids remembered (%d in order), want at most %d", len(r.seen), len(r.order), maxRemembered)
	}
	if _, fresh := r.reserve("0", now); !fresh {
		t.Error("the oldest id is still remembered")
	}
	if _, fresh := r.reserve(fmt.Sprint(maxRemembered+9), now); fresh {
		t.Error("the newest id is forgotten")
	}
}

// Keys gives the secret and ref of each delivery; its refusals answer
// with their status, and it is not asked for an unsigned delivery.
func TestHandlerKeys(t *testing.T) {
	secret := []byte("s3")
	body := sample(t, "github_push.json")
	var keys Keys
	var keysErr error
	asked := 0
	rec := &recorder{}
	h, err := NewHandler(Config{Keys: func(context.Context) (Keys, error) { asked++; return keys, keysErr }}, rec)
	if err != nil {
		t.Fatal(err)
	}
	post := func(signed bool) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(body))
		req.Header.Set(HeaderGitHubEvent, "push")
		if signed {
			req.Header.Set(HeaderHubSignature256, Sign(secret, body))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	if w := post(false); w.Code != http.StatusUnauthorized || asked != 0 {
		t.Fatalf("unsigned: %d, keys asked %d times", w.Code, asked)
	}
	keysErr = Refuse(http.StatusConflict, "this cluster follows no Git source")
	if w := post(true); w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "follows no Git source") {
		t.Fatalf("no source: %d %s", w.Code, w.Body)
	}
	keysErr = errors.New("store closed")
	if w := post(true); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("keys error: %d %s", w.Code, w.Body)
	}
	keysErr = nil
	keys = Keys{Secret: []byte("other"), Ref: "main"}
	if w := post(true); w.Code != http.StatusUnauthorized {
		t.Fatalf("other secret: %d %s", w.Code, w.Body)
	}
	keys = Keys{Secret: secret, Ref: "dev"}
	if w := post(true); w.Code != http.StatusAccepted || !strings.Contains(w.Body.String(), "source follows dev") {
		t.Fatalf("other ref: %d %s", w.Code, w.Body)
	}
	keys.Ref = "main"
	if w := post(true); w.Code != http.StatusAccepted || len(rec.events) != 1 {
		t.Fatalf("push: %d %s, %d events", w.Code, w.Body, len(rec.events))
	}
}
