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
