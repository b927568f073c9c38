package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// recorder is a Trigger that remembers what it was given.
type recorder struct {
	mu     sync.Mutex
	events []Event
	err    error
}

func (r *recorder) Trigger(_ context.Context, ev Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.events = append(r.events, ev)
	return nil
}

func TestHandler(t *testing.T) {
	secret := []byte("hook-secret")
	signed := func(body []byte, kv ...string) http.Header {
		h := hdr(kv...)
		h.Set(HeaderHubSignature256, Sign(secret, body))
		return h
	}
	ghPush := sample(t, "github_push.json")
	for _, tc := range []struct {
		name       string
		method     string
		path       string
		body       []byte
		header     http.Header
		triggerErr error
		wantStatus int
		want       Response
		wantEvents int
	}{
		{
			name: "github push to main", path: "/hooks/github", body: ghPush,
			header:     signed(ghPush, HeaderGitHubEvent, "push", "X-GitHub-Delivery", "d-1"),
			wantStatus: http.StatusAccepted, wantEvents: 1,
			want: Response{Action: ActionQueued, Message: "sync queued for main at 59b20b8", Provider: "github", Event: "push",
				Ref: "refs/heads/main", Commit: "59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5", Delivery: "d-1"},
		},
		{
			name: "github push to dev", path: "/hooks/github", body: sample(t, "github_push_dev.json"),
			header:     signed(sample(t, "github_push_dev.json"), HeaderGitHubEvent, "push"),
			wantStatus: http.StatusAccepted,
			want: Response{Action: ActionIgnored, Message: "ignored: push to branch dev (source follows main)", Provider: "github",
				Event: "push", Ref: "refs/heads/dev", Commit: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"},
		},
		{
			name: "github ping", path: "/hooks/github", body: sample(t, "github_ping.json"),
			header:     signed(sample(t, "github_ping.json"), HeaderGitHubEvent, "ping"),
			wantStatus: http.StatusAccepted,
			want:       Response{Action: ActionIgnored, Message: "ping accepted, no sync", Provider: "github", Event: "ping"},
		},
		{
			name: "github issues", path: "/hooks/github", body: sample(t, "github_issues.json"),
			header:     signed(sample(t, "github_issues.json"), HeaderGitHubEvent, "issues"),
			wantStatus: http.StatusAccepted,
			want:       Response{Action: ActionIgnored, Message: "ignored: event issues is not a push", Provider: "github", Event: "issues"},
		},
		{
			name: "github bad signature", path: "/hooks/github", body: ghPush,
			header:     hdr(HeaderGitHubEvent, "push", HeaderHubSignature256, Sign([]byte("wrong"), ghPush)),
			wantStatus: http.StatusUnauthorized,
			want:       Response{Action: ActionRefused, Message: "github webhook: signature mismatch; nothing changed", Provider: "github"},
		},
		{
			name: "github unsigned", path: "/hooks/github", body: ghPush, header: hdr(HeaderGitHubEvent, "push"),
			wantStatus: http.StatusUnauthorized,
			want:       Response{Action: ActionRefused, Message: "github webhook: missing X-Hub-Signature-256 header; nothing changed", Provider: "github"},
		},
		{
			name: "github bad payload", path: "/hooks/github", body: []byte(`{"ref":1}`),
			header:     signed([]byte(`{"ref":1}`), HeaderGitHubEvent, "push"),
			wantStatus: http.StatusBadRequest,
			want: Response{Action: ActionRefused, Provider: "github", Event: "push",
				Message: "github payload: invalid JSON: json: cannot unmarshal number into Go struct field hubPush.ref of type string"},
		},
		{
			name: "gitlab push", path: "/hooks/gitlab", body: sample(t, "gitlab_push.json"),
			header:     hdr(HeaderGitLabEvent, "Push Hook", HeaderGitLabToken, "hook-secret"),
			wantStatus: http.StatusAccepted, wantEvents: 1,
			want: Response{Action: ActionQueued, Message: "sync queued for main at da15608", Provider: "gitlab", Event: "Push Hook",
				Ref: "refs/heads/main", Commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"},
		},
		{
			name: "gitlab wrong token", path: "/hooks/gitlab", body: sample(t, "gitlab_push.json"),
			header:     hdr(HeaderGitLabEvent, "Push Hook", HeaderGitLabToken, "nope"),
			wantStatus: http.StatusUnauthorized,
			want:       Response{Action: ActionRefused, Message: "gitlab webhook: token mismatch; nothing changed", Provider: "gitlab"},
		},
		{
			name: "gitlab branch deleted", path: "/hooks/gitlab", body: sample(t, "gitlab_delete.json"),
			header:     hdr(HeaderGitLabEvent, "Push Hook", HeaderGitLabToken, "hook-secret"),
			wantStatus: http.StatusAccepted, wantEvents: 1,
			want: Response{Action: ActionQueued, Message: "sync queued for main (ref deleted)", Provider: "gitlab", Event: "Push Hook",
				Ref: "refs/heads/main"},
		},
		{
			name: "gitea push", path: "/hooks/gitea", body: sample(t, "gitea_push.json"),
			header:     signed(sample(t, "gitea_push.json"), HeaderGiteaEvent, "push"),
			wantStatus: http.StatusAccepted, wantEvents: 1,
			want: Response{Action: ActionQueued, Message: "sync queued for main at bffeb74", Provider: "gitea", Event: "push",
				Ref: "refs/heads/main", Commit: "bffeb74224043ba2feb48d137756c8a9331c449a"},
		},
		{
			name: "generic push", path: "/hooks/generic", body: sample(t, "generic_short.json"),
			header:     hdr(HeaderGitorcSignature, Sign(secret, sample(t, "generic_short.json"))),
			wantStatus: http.StatusAccepted, wantEvents: 1,
			want: Response{Action: ActionQueued, Message: "sync queued for main", Provider: "generic", Event: "push", Ref: "refs/heads/main"},
		},
		{
			name: "suspended", path: "/hooks/github", body: ghPush, triggerErr: Ignore("syncs are suspended"),
			header:     signed(ghPush, HeaderGitHubEvent, "push"),
			wantStatus: http.StatusAccepted,
			want: Response{Action: ActionIgnored, Message: "ignored: syncs are suspended", Provider: "github", Event: "push",
				Ref: "refs/heads/main", Commit: "59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5"},
		},
		{
			name: "not leader", path: "/hooks/github", body: ghPush, triggerErr: errors.New("not leader: 10.0.0.2:4270"),
			header:     signed(ghPush, HeaderGitHubEvent, "push"),
			wantStatus: http.StatusServiceUnavailable,
			want: Response{Action: ActionRefused, Message: "sync not queued: not leader: 10.0.0.2:4270", Provider: "github", Event: "push",
				Ref: "refs/heads/main", Commit: "59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5"},
		},
		{
			name: "GET", method: http.MethodGet, path: "/hooks/github", wantStatus: http.StatusMethodNotAllowed,
			want: Response{Action: ActionRefused, Message: "method GET not allowed: use POST", Provider: "github"},
		},
		{
			name: "unknown provider", path: "/hooks/bitbucket", body: ghPush, wantStatus: http.StatusNotFound,
			want: Response{Action: ActionRefused, Message: `unknown webhook provider "bitbucket" (github, gitlab, gitea, generic)`},
		},
		{
			name: "too large", path: "/hooks/github", body: bytes.Repeat([]byte(" "), 2048),
			header:     signed(bytes.Repeat([]byte(" "), 2048), HeaderGitHubEvent, "push"),
			wantStatus: http.StatusRequestEntityTooLarge,
			want:       Response{Action: ActionRefused, Message: "body larger than 1024 bytes", Provider: "github"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{err: tc.triggerErr}
			var seen []Response
			var seenStatus int
			onDelivery := func(_ context.Context, status int, resp Response) { seen, seenStatus = append(seen, resp), status }
			h, err := NewHandler(Config{Secret: secret, Ref: "main", MaxBody: 1024, OnDelivery: onDelivery}, rec)
			if err != nil {
				t.Fatal(err)
			}
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, tc.path, bytes.NewReader(tc.body))
			for k, v := range tc.header {
				req.Header[k] = v
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tc.wantStatus {
				t.Errorf("status = %d, want %d; body %s", w.Code, tc.wantStatus, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var got Response
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("response (-want +got):\n%s", d)
			}
			if len(rec.events) != tc.wantEvents {
				t.Errorf("triggers = %d, want %d", len(rec.events), tc.wantEvents)
			}
			if len(seen) != 1 || seenStatus != w.Code || seen[0] != got {
				t.Errorf("OnDelivery saw %d %+v, want the answer once", seenStatus, seen)
			}
			if tc.wantStatus == http.StatusMethodNotAllowed && w.Header().Get("Allow") != http.MethodPost {
				t.Errorf("Allow = %q", w.Header().Get("Allow"))
			}
		})
	}
}

func TestHandlerServeMux(t *testing.T) {
	rec := &recorder{}
	h, err := NewHandler(Config{Secret: []byte("s3"), Ref: "main"}, rec)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/hooks/{provider}", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	body := sample(t, "generic_push.json")
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hooks/generic", bytes.NewReader(body))
	req.Header.Set(HeaderGitorcSignature, Sign([]byte("s3"), body))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got Response
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(got.Message, "sync queued for main at 4b825dc") || len(rec.events) != 1 {
		t.Fatalf("status %d, %+v, %d events", resp.StatusCode, got, len(rec.events))
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := NewHandler(Config{Ref: "main"}, &recorder{}); err == nil || !strings.Contains(err.Error(), "webhook secret is empty") {
		t.Fatalf("NewHandler without secret = %v", err)
	}
	if _, err := NewHandler(Config{Secret: []byte("x"), Ref: "refs/pull/1/head"}, &recorder{}); err == nil {
		t.Fatal("NewHandler with refs/pull accepted")
	}
	if _, err := NewHandler(Config{Secret: []byte("x")}, nil); err == nil {
		t.Fatal("NewHandler with nil trigger accepted")
	}
}
