package webhook

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name     string
		provider Provider
		header   http.Header
		file     string
		body     string
		want     Event
		wantErr  string
	}{
		{
			name: "github push", provider: GitHub, file: "github_push.json",
			header: hdr(HeaderGitHubEvent, "push", "X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
			want: Event{Provider: GitHub, Kind: KindPush, Name: "push", Ref: "refs/heads/main",
				Commit: "59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5", Delivery: "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		},
		{
			name: "github branch deleted", provider: GitHub, file: "github_delete.json", header: hdr(HeaderGitHubEvent, "push"),
			want: Event{Provider: GitHub, Kind: KindPush, Name: "push", Ref: "refs/heads/main", Deleted: true},
		},
		{
			name: "github ping", provider: GitHub, file: "github_ping.json", header: hdr(HeaderGitHubEvent, "ping"),
			want: Event{Provider: GitHub, Kind: KindPing, Name: "ping"},
		},
		{
			name: "github issues", provider: GitHub, file: "github_issues.json", header: hdr(HeaderGitHubEvent, "issues"),
			want: Event{Provider: GitHub, Kind: KindOther, Name: "issues"},
		},
		{
			name: "github form encoded", provider: GitHub,
			header: hdr(HeaderGitHubEvent, "push", "Content-Type", "application/x-www-form-urlencoded"),
			body:   `payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%2C%22after%22%3A%2259b20b8d5c6ff8d09518454d4dd8b7a30f095ab5%22%7D`,
			want: Event{Provider: GitHub, Kind: KindPush, Name: "push", Ref: "refs/heads/main",
				Commit: "59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5"},
		},
		{
			name: "github no event header", provider: GitHub, file: "github_push.json", header: hdr(),
			wantErr: "github payload: missing X-GitHub-Event header",
		},
		{
			name: "github push without after", provider: GitHub, header: hdr(HeaderGitHubEvent, "push"),
			body: `{"ref":"refs/heads/main"}`, wantErr: "github payload: push without ref or after",
		},
		{
			name: "github not json", provider: GitHub, header: hdr(HeaderGitHubEvent, "push"),
			body: `ref=main`, wantErr: "github payload: invalid JSON: invalid character 'r' looking for beginning of value",
		},
		{
			name: "github bad commit", provider: GitHub, header: hdr(HeaderGitHubEvent, "push"),
			body: `{"ref":"refs/heads/main","after":"xyz"}`, wantErr: `github payload: commit "xyz" is not a hex hash`,
		},
		{
			name: "gitea push", provider: Gitea, file: "gitea_push.json",
			header: hdr(HeaderGiteaEvent, "push", "X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"),
			want: Event{Provider: Gitea, Kind: KindPush, Name: "push", Ref: "refs/heads/main",
				Commit: "bffeb74224043ba2feb48d137756c8a9331c449a", Delivery: "f6266f16-1bf3-46a5-9ea4-602e06ead473"},
		},
		{
			name: "gitea create event", provider: Gitea, file: "gitea_push.json", header: hdr(HeaderGiteaEvent, "create"),
			want: Event{Provider: Gitea, Kind: KindOther, Name: "create"},
		},
		{
			name: "gitlab push", provider: GitLab, file: "gitlab_push.json", header: hdr(HeaderGitLabEvent, "Push Hook"),
			want: Event{Provider: GitLab, Kind: KindPush, Name: "Push Hook", Ref: "refs/heads/main",
				Commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"},
		},
		{
			name: "gitlab tag push", provider: GitLab, file: "gitlab_tag_push.json", header: hdr(HeaderGitLabEvent, "Tag Push Hook"),
			want: Event{Provider: GitLab, Kind: KindPush, Name: "Tag Push Hook", Ref: "refs/tags/v1.0.0",
				Commit: "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"},
		},
		{
			name: "gitlab branch deleted", provider: GitLab, file: "gitlab_delete.json", header: hdr(HeaderGitLabEvent, "Push Hook"),
			want: Event{Provider: GitLab, Kind: KindPush, Name: "Push Hook", Ref: "refs/heads/main", Deleted: true},
		},
		{
			name: "gitlab merge request", provider: GitLab, file: "gitlab_mr.json", header: hdr(HeaderGitLabEvent, "Merge Request Hook"),
			want: Event{Provider: GitLab, Kind: KindOther, Name: "Merge Request Hook"},
		},
		{
			name: "generic push", provider: Generic, file: "generic_push.json", header: hdr(),
			want: Event{Provider: Generic, Kind: KindPush, Name: "push", Ref: "refs/heads/main",
				Commit: "4b825dc642cb6eb9a060e54bf8d69288fbee4904"},
		},
		{
			name: "generic short ref, no commit", provider: Generic, file: "generic_short.json", header: hdr(),
			want: Event{Provider: Generic, Kind: KindPush, Name: "push", Ref: "refs/heads/main"},
		},
		{
			name: "generic empty body", provider: Generic, header: hdr(), wantErr: "generic payload: empty body",
		},
		{
			name: "generic without ref", provider: Generic, header: hdr(), body: `{"after":"4b825dc642cb6eb9a060e54bf8d69288fbee4904"}`,
			wantErr: `generic payload: push without "ref"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			if tc.file != "" {
				body = sample(t, tc.file)
			}
			got, err := Parse(tc.provider, tc.header, body)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr || !errors.Is(err, ErrBadPayload) {
					t.Fatalf("err = %v, want %q (ErrBadPayload)", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Fatalf("event (-want +got):\n%s", d)
			}
		})
	}
}

func TestConcerns(t *testing.T) {
	push := func(ref string) Event { return Event{Kind: KindPush, Name: "push", Ref: ref} }
	for _, tc := range []struct {
		ref    string
		ev     Event
		want   bool
		reason string
	}{
		{"main", push("refs/heads/main"), true, ""},
		{"main", push("refs/heads/dev"), false, "push to branch dev (source follows main)"},
		{"refs/heads/main", push("refs/heads/main"), true, ""},
		{"v1", push("refs/tags/v1"), true, ""},
		{"refs/tags/v1", push("refs/heads/v1"), false, "push to branch v1 (source follows v1)"},
		{"main", push("refs/tags/v2"), false, "push to tag v2 (source follows main)"},
		{"", push("refs/heads/anything"), true, ""},
		{"59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5", push("refs/heads/main"), false, "source is pinned to commit 59b20b8"},
		{"main", Event{Kind: KindOther, Name: "issues"}, false, "event issues is not a push"},
	} {
		got, reason := Config{Ref: tc.ref}.Concerns(tc.ev)
		if got != tc.want || reason != tc.reason {
			t.Errorf("Concerns(ref %q, %s) = %v %q, want %v %q", tc.ref, tc.ev.Ref, got, reason, tc.want, tc.reason)
		}
	}
}
