package notify

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// receiver records the requests it gets; it fails the first fail ones.
type receiver struct {
	mu   sync.Mutex
	fail int
	reqs []seen
}

type seen struct {
	method, path, query string
	header              http.Header
	body                []byte
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, seen{req.Method, req.URL.Path, req.URL.RawQuery, req.Header.Clone(), b})
	if r.fail > 0 {
		r.fail--
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func (r *receiver) got() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seen(nil), r.reqs...)
}

// run delivers one record's notifications and returns the reports.
func run(t *testing.T, spec api.NotifySpec, rec api.SyncRecord, keys Keys) []api.NotifyDelivery {
	t.Helper()
	var mu sync.Mutex
	var reports []api.NotifyDelivery
	n := New(Config{Keys: func() Keys { return keys }, Backoff: time.Millisecond, Attempts: 3,
		Report: func(d api.NotifyDelivery) { mu.Lock(); reports = append(reports, d); mu.Unlock() }})
	n.deliver(context.Background(), job{spec, rec, []string{"web_app"}})
	return reports
}

var finished = api.SyncRecord{Meta: api.Meta{ID: "rec-1"}, Revision: "0123456789abcdef0123456789abcdef01234567", Trigger: api.TriggerWebhook,
	StartedAt: time.Unix(100, 0), FinishedAt: time.Unix(160, 0), Result: api.SyncDegraded, Message: "revision 0123456 degraded: web_app: 1/3 ready"}

func TestEventSignedAndRetried(t *testing.T) {
	r := &receiver{fail: 1}
	srv := httptest.NewServer(r)
	defer srv.Close()
	reports := run(t, api.NotifySpec{URL: srv.URL + "/hooks/gitorc"}, finished, Keys{Secret: []byte("s3cret")})
	got := r.got()
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2 (one failed, retried)", len(got))
	}
	req := got[1]
	var ev Event
	if err := json.Unmarshal(req.body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Event != "degraded" || ev.Revision != finished.Revision || ev.Trigger != "webhook" || ev.Record != "rec-1" ||
		ev.Message != finished.Message || len(ev.Services) != 1 || !ev.Time.Equal(finished.FinishedAt) {
		t.Errorf("event %+v", ev)
	}
	if req.method != http.MethodPost || req.header.Get("Content-Type") != "application/json" {
		t.Errorf("request %s %s", req.method, req.header.Get("Content-Type"))
	}
	if sig := req.header.Get(SignatureHeader); !hmac.Equal([]byte(sig), []byte(Sign([]byte("s3cret"), req.body))) || !strings.HasPrefix(sig, "sha256=") {
		t.Errorf("signature %q", sig)
	}
	if len(reports) != 1 || reports[0].Error != "" || reports[0].Attempts != 2 || reports[0].Event != "degraded" {
		t.Errorf("reports %+v", reports)
	}
}

func TestReceiverDownIsReported(t *testing.T) {
	r := &receiver{fail: 100}
	srv := httptest.NewServer(r)
	defer srv.Close()
	reports := run(t, api.NotifySpec{URL: srv.URL}, finished, Keys{})
	if len(r.got()) != 3 || len(reports) != 1 || reports[0].Attempts != 3 ||
		!strings.Contains(reports[0].Error, "503 Service Unavailable down for maintenance (after 3 attempts)") {
		t.Errorf("%d requests, reports %+v", len(r.got()), reports)
	}
	if r.got()[0].header.Get(SignatureHeader) != "" {
		t.Error("signed without a secret")
	}
}

// Each provider's documented commit status call.
func TestCommitStatus(t *testing.T) {
	started := finished
	started.FinishedAt, started.Result, started.Message = time.Time{}, api.SyncProgressing, ""
	synced := finished
	synced.Result = api.SyncSynced
	for _, tc := range []struct {
		provider string
		rec      api.SyncRecord
		path     string
		check    func(t *testing.T, s seen)
	}{
		{"github", started, "/repos/team/app/statuses/" + finished.Revision, func(t *testing.T, s seen) {
			var b map[string]string
			_ = json.Unmarshal(s.body, &b)
			if b["state"] != "pending" || b["context"] != "gitorc" || b["description"] != "gitorc: pending" ||
				s.header.Get("Authorization") != "Bearer tok" || s.header.Get("Accept") != "application/vnd.github+json" {
				t.Errorf("github: %v %v", b, s.header)
			}
		}},
		{"gitea", synced, "/api/v1/repos/team/app/statuses/" + finished.Revision, func(t *testing.T, s seen) {
			var b map[string]string
			_ = json.Unmarshal(s.body, &b)
			if b["state"] != "success" || b["context"] != "gitorc" || s.header.Get("Authorization") != "token tok" {
				t.Errorf("gitea: %v %v", b, s.header)
			}
		}},
		{"gitlab", finished, "/api/v4/projects/team%2Fapp/statuses/" + finished.Revision, func(t *testing.T, s seen) {
			if !strings.Contains(s.query, "state=failed") || !strings.Contains(s.query, "name=gitorc") ||
				!strings.Contains(s.query, "description=gitorc%3A+degraded") || s.header.Get("PRIVATE-TOKEN") != "tok" {
				t.Errorf("gitlab: %s %v", s.query, s.header)
			}
		}},
	} {
		r := &receiver{}
		srv := httptest.NewServer(r)
		reports := run(t, api.NotifySpec{CommitStatus: tc.provider, CommitStatusAPI: srv.URL, CommitStatusRepo: "team/app"}, tc.rec, Keys{Token: []byte("tok")})
		srv.Close()
		got := r.got()
		if len(got) != 1 || len(reports) != 1 || reports[0].Error != "" {
			t.Errorf("%s: %d requests, reports %+v", tc.provider, len(got), reports)
			continue
		}
		// GitLab's raw path keeps the encoded slash.
		if path := got[0].path; path != strings.ReplaceAll(tc.path, "%2F", "/") || got[0].method != http.MethodPost {
			t.Errorf("%s: %s %s, want POST %s", tc.provider, got[0].method, path, tc.path)
		}
		tc.check(t, got[0])
	}
}

// Notify never blocks: a full queue drops the notification and says so.
func TestNotifyNeverBlocks(t *testing.T) {
	var dropped int
	n := New(Config{Report: func(d api.NotifyDelivery) {
		if d.Target == "queue" {
			dropped++
		}
	}})
	for range queueSize + 3 {
		n.Notify(&api.NotifySpec{URL: "http://127.0.0.1:9/"}, finished, nil)
	}
	if dropped != 3 {
		t.Errorf("%d dropped, want 3", dropped)
	}
	n.Notify(nil, finished, nil) // nothing to do
}

func TestValidate(t *testing.T) {
	if err := Validate(api.NotifySpec{URL: "ftp://x", CommitStatus: "gitea", CommitStatusRepo: "app"}); err == nil ||
		!strings.Contains(err.Error(), "want an http(s) URL") || !strings.Contains(err.Error(), "want owner/name") || !strings.Contains(err.Error(), "--commit-status-api") {
		t.Errorf("validate: %v", err)
	}
	if err := Validate(api.NotifySpec{URL: "https://hooks.example.com/x", CommitStatus: "github", CommitStatusRepo: "team/app"}); err != nil {
		t.Errorf("a good spec: %v", err)
	}
}

// What a new leader owes: the outcomes not told yet of syncs that ended
// (or run) since the spec was set; nothing without a spec.
func TestOwed(t *testing.T) {
	spec := &api.NotifySpec{URL: "http://127.0.0.1:1/hook", Since: time.Unix(150, 0)}
	at := func(id string, start, end int64, notified string) api.SyncRecord {
		r := api.SyncRecord{Meta: api.Meta{ID: id}, StartedAt: time.Unix(start, 0), Result: api.SyncSynced, Notified: notified}
		if end > 0 {
			r.FinishedAt = time.Unix(end, 0)
		}
		return r
	}
	recs := []api.SyncRecord{
		at("ended-before", 100, 120, ""),             // before the spec: never owed
		at("ended-after", 140, 160, ""),              // started before, ended after: owed
		at("told", 160, 170, "synced"),               // told already
		at("pending-told-only", 170, 180, "pending"), // its end is owed
		at("running", 190, 0, ""),                    // its start is owed
		at("running-told", 195, 0, "pending"),        // told
	}
	var ids []string
	for _, r := range Owed(spec, recs) {
		ids = append(ids, r.ID)
	}
	if got, want := strings.Join(ids, " "), "ended-after pending-told-only running"; got != want {
		t.Errorf("owed %q, want %q", got, want)
	}
	if got := Owed(nil, recs); got != nil {
		t.Errorf("owed without a spec: %v", got)
	}
	if got := Owed(&api.NotifySpec{Since: time.Unix(0, 0)}, recs); got != nil {
		t.Errorf("owed with an empty spec: %v", got)
	}
}

// A record is told when its deliveries are done, retries included; a
// notifier stopped during a retry does not mark it told, so that the next
// leader tells it again. The event names the record's services.
func TestToldOnlyWhenDone(t *testing.T) {
	r := &receiver{fail: 1 << 20}
	srv := httptest.NewServer(r)
	defer srv.Close()
	told := make(chan string, 4)
	newNotifier := func(backoff time.Duration) *Notifier {
		return New(Config{Backoff: backoff, Attempts: 2, Told: func(rec api.SyncRecord, ev string) { told <- rec.ID + ":" + ev }})
	}
	rec := finished
	rec.Services = []string{"shop_web", "shop_db"}
	spec := api.NotifySpec{URL: srv.URL + "/hook"}

	// Given up after its retries: told (and reported failed).
	ctx, cancel := context.WithCancel(context.Background())
	n := newNotifier(time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	n.Notify(&spec, rec, nil)
	if got := <-told; got != "rec-1:degraded" {
		t.Errorf("told %q", got)
	}
	cancel()
	<-done
	var ev Event
	if got := r.got(); len(got) != 2 || json.Unmarshal(got[0].body, &ev) != nil || strings.Join(ev.Services, " ") != "shop_web shop_db" {
		t.Errorf("%d requests, event %+v: want 2 tries of an event naming the record's services", len(got), ev)
	}

	// Stopped while it waits to retry: not told.
	ctx, cancel = context.WithCancel(context.Background())
	n = newNotifier(time.Hour)
	go func() { done <- n.Run(ctx) }()
	before := len(r.got())
	n.Notify(&spec, rec, nil)
	if err := waitFor(func() bool { return len(r.got()) > before }); err != nil {
		t.Fatal("the notification was never tried")
	}
	cancel()
	<-done
	select {
	case got := <-told:
		t.Errorf("told %q although the notifier stopped before its retry", got)
	default:
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(cond func() bool) error {
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return nil
		}
	}
	return context.DeadlineExceeded
}
