package gitsource

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newSource(t testing.TB, cfg Config) *Source {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = filepath.Join(t.TempDir(), "clone")
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func mustFetch(t testing.TB, s *Source) Revision {
	t.Helper()
	rev, err := s.Fetch(context.Background())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return rev
}

func readFile(t *testing.T, s *Source, commit, name string) string {
	t.Helper()
	b, err := s.ReadFile(commit, name)
	if err != nil {
		t.Fatalf("ReadFile %s: %v", name, err)
	}
	return string(b)
}

func TestLocalPathFollowsBranch(t *testing.T) {
	up := newUpstream(t)
	c1 := up.commit("first", map[string]string{"compose.yaml": "services: {}\n"})
	s := newSource(t, Config{URL: up.bare, Ref: "main"})

	rev := mustFetch(t, s)
	if rev.Commit != c1 || !rev.Fetched || rev.Ref != "refs/heads/main" || rev.Subject != "first" {
		t.Fatalf("first fetch = %+v, want %s fetched from refs/heads/main", rev, c1)
	}
	if got := readFile(t, s, c1, "compose.yaml"); got != "services: {}\n" {
		t.Fatalf("ReadFile = %q", got)
	}
	if rev := mustFetch(t, s); rev.Commit != c1 || rev.Fetched {
		t.Fatalf("unchanged fetch = %+v, want %s not fetched", rev, c1)
	}
	c2 := up.commit("second", map[string]string{"compose.yaml": "services: {web: {image: nginx}}\n"})
	if rev := mustFetch(t, s); rev.Commit != c2 || !rev.Fetched {
		t.Fatalf("fetch after push = %+v, want %s fetched", rev, c2)
	}
	// The older commit stays readable (the last good revision).
	if got := readFile(t, s, c1, "compose.yaml"); got != "services: {}\n" {
		t.Fatalf("old commit ReadFile = %q", got)
	}
	// A second Source on the same data dir reuses the clone.
	s2 := newSource(t, Config{URL: "file://" + up.bare, Ref: "main", DataDir: s.cfg.DataDir})
	if rev := mustFetch(t, s2); rev.Commit != c2 || rev.Fetched {
		t.Fatalf("reopened clone fetch = %+v, want %s already present", rev, c2)
	}
}

func TestHTTPBasicAuth(t *testing.T) {
	up := newUpstream(t)
	c1 := up.commit("first", map[string]string{"a.txt": "a"})
	srv := serveHTTP(t, up.root, "deploy", "s3cret-pass")
	url := srv.URL + "/repo.git"

	t.Run("good password", func(t *testing.T) {
		s := newSource(t, Config{URL: url, Ref: "main", Auth: Auth{Username: "deploy", Password: "s3cret-pass"}})
		if rev := mustFetch(t, s); rev.Commit != c1 {
			t.Fatalf("commit = %s, want %s", rev.Commit, c1)
		}
	})
	t.Run("token as password", func(t *testing.T) {
		s := newSource(t, Config{URL: url, Ref: "main", Auth: Auth{Username: "deploy", Token: "s3cret-pass"}})
		mustFetch(t, s)
	})
	t.Run("credentials in url", func(t *testing.T) {
		s := newSource(t, Config{URL: strings.Replace(url, "http://", "http://deploy:s3cret-pass@", 1), Ref: "main"})
		mustFetch(t, s)
		if st := s.Status(); strings.Contains(st.URL, "s3cret") {
			t.Fatalf("status URL leaks the password: %s", st.URL)
		}
	})
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"wrong password", Config{URL: url, Ref: "main", Auth: Auth{Username: "deploy", Password: "wrong-password"}}},
		{"wrong password in url", Config{URL: strings.Replace(url, "http://", "http://deploy:wrong-password@", 1), Ref: "main"}},
		{"no credentials", Config{URL: url, Ref: "main"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
			tc.cfg.Now = func() time.Time { return now }
			s := newSource(t, tc.cfg)
			_, err := s.Fetch(context.Background())
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("err = %v, want ErrAuth", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "ls-remote "+url+": authentication required") {
				t.Errorf("err = %q, want it to start with %q", msg, "ls-remote "+url+": authentication required")
			}
			if strings.Contains(msg, "wrong-password") {
				t.Errorf("err leaks the password: %q", msg)
			}
			st := s.Status()
			if !st.Failing() || st.LastError != msg || !st.LastErrorAt.Equal(now) || !st.LastFetch.IsZero() {
				t.Errorf("status = %+v, want failing with the error at %v", st, now)
			}
		})
	}
}

func TestLsRemoteShortCircuit(t *testing.T) {
	up := newUpstream(t)
	c1 := up.commit("first", map[string]string{"a.txt": "a"})
	srv := serveHTTP(t, up.root, "", "")
	s := newSource(t, Config{URL: srv.URL + "/repo.git", Ref: "main"})

	mustFetch(t, s)
	if n := srv.uploadPacks.Load(); n != 1 {
		t.Fatalf("upload-pack requests after first fetch = %d, want 1", n)
	}
	for range 3 {
		if rev := mustFetch(t, s); rev.Commit != c1 || rev.Fetched {
			t.Fatalf("unchanged fetch = %+v", rev)
		}
	}
	if got, err := s.Resolve(context.Background()); err != nil || got != c1 {
		t.Fatalf("Resolve = %s, %v; want %s", got, err, c1)
	}
	if n := srv.uploadPacks.Load(); n != 1 {
		t.Fatalf("upload-pack requests after unchanged fetches = %d, want still 1 (ls-remote only)", n)
	}
	c2 := up.commit("second", map[string]string{"b.txt": "b"})
	if got, err := s.Resolve(context.Background()); err != nil || got != c2 {
		t.Fatalf("Resolve after push = %s, %v; want %s", got, err, c2)
	}
	if n := srv.uploadPacks.Load(); n != 1 {
		t.Fatalf("Resolve fetched: upload-pack requests = %d, want 1", n)
	}
	if rev := mustFetch(t, s); rev.Commit != c2 || !rev.Fetched {
		t.Fatalf("fetch after push = %+v", rev)
	}
	if n := srv.uploadPacks.Load(); n != 2 {
		t.Fatalf("upload-pack requests after a new commit = %d, want 2", n)
	}
	// The ref moving back to a commit already held needs no download.
	up.git("reset", "-q", "--hard", c1)
	up.git("push", "-q", "-f", "origin", "HEAD:refs/heads/main")
	if rev := mustFetch(t, s); rev.Commit != c1 || rev.Fetched {
		t.Fatalf("fetch after reset to an old commit = %+v, want %s not fetched", rev, c1)
	}
	if n := srv.uploadPacks.Load(); n != 2 {
		t.Fatalf("upload-pack requests after reset = %d, want 2", n)
	}
	if st := s.Status(); st.Commit != c1 || st.LastFetch.IsZero() || st.Failing() {
		t.Fatalf("status = %+v", st)
	}
}

func TestTagsAndCommits(t *testing.T) {
	up := newUpstream(t)
	c1 := up.commit("one", map[string]string{"v.txt": "1"})
	up.git("tag", "v1")
	c2 := up.commit("two", map[string]string{"v.txt": "2"})
	up.git("tag", "-a", "-m", "release 2", "v2")
	up.git("push", "-q", "origin", "v1", "v2")
	c3 := up.commit("three", map[string]string{"v.txt": "3"})
	srv := serveHTTP(t, up.root, "", "")
	url := srv.URL + "/repo.git"

	for _, tc := range []struct {
		ref, want, wantRef string
	}{
		{"v1", c1, "refs/tags/v1"},
		{"refs/tags/v1", c1, "refs/tags/v1"},
		{"v2", c2, "refs/tags/v2"}, // annotated: peeled to the commit
		{"main", c3, "refs/heads/main"},
		{"", c3, "HEAD"},
		{c2, c2, ""},
		{c1, c1, ""},
	} {
		t.Run("ref="+tc.ref, func(t *testing.T) {
			s := newSource(t, Config{URL: url, Ref: tc.ref})
			rev := mustFetch(t, s)
			if rev.Commit != tc.want || rev.Ref != tc.wantRef {
				t.Fatalf("Fetch = %s from %q, want %s from %q", rev.Commit, rev.Ref, tc.want, tc.wantRef)
			}
			if got := readFile(t, s, rev.Commit, "v.txt"); got != map[string]string{c1: "1", c2: "2", c3: "3"}[tc.want] {
				t.Fatalf("v.txt = %q", got)
			}
			if rev := mustFetch(t, s); rev.Fetched {
				t.Fatalf("second fetch downloaded again: %+v", rev)
			}
		})
	}
	t.Run("unknown commit", func(t *testing.T) {
		missing := strings.Repeat("ab", 20)
		s := newSource(t, Config{URL: url, Ref: missing})
		_, err := s.Fetch(context.Background())
		if !errors.Is(err, ErrCommitNotFound) || err.Error() != "commit abababa not found in "+url {
			t.Fatalf("err = %v, want commit abababa not found in %s", err, url)
		}
	})
	t.Run("unknown tag", func(t *testing.T) {
		s := newSource(t, Config{URL: url, Ref: "v9"})
		_, err := s.Fetch(context.Background())
		if !errors.Is(err, ErrRefNotFound) || !strings.Contains(err.Error(), "ref v9 not found in "+url) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestForcePushAndDeletedBranch(t *testing.T) {
	up := newUpstream(t)
	up.git("checkout", "-q", "-b", "dev")
	old := up.commit("dev work", map[string]string{"app/compose.yaml": "old\n"})
	srv := serveHTTP(t, up.root, "", "")
	url := srv.URL + "/repo.git"
	s := newSource(t, Config{URL: url, Ref: "dev", Path: "app"})
	if rev := mustFetch(t, s); rev.Commit != old {
		t.Fatalf("commit = %s, want %s", rev.Commit, old)
	}

	// Force-push an unrelated history.
	up.git("checkout", "-q", "--orphan", "rewrite")
	up.git("rm", "-q", "-rf", ".")
	newC := up.commit("rewritten", map[string]string{"app/compose.yaml": "new\n"})
	up.git("push", "-q", "-f", "origin", "HEAD:refs/heads/dev")
	rev := mustFetch(t, s)
	if rev.Commit != newC || !rev.Fetched {
		t.Fatalf("after force-push = %+v, want %s", rev, newC)
	}
	if got := readFile(t, s, newC, "compose.yaml"); got != "new\n" {
		t.Fatalf("new compose = %q", got)
	}
	if got := readFile(t, s, old, "compose.yaml"); got != "old\n" {
		t.Fatalf("the force-pushed-away commit must stay readable, got %q", got)
	}

	// Delete the branch.
	up.git("push", "-q", "origin", ":refs/heads/dev")
	_, err := s.Fetch(context.Background())
	if !errors.Is(err, ErrRefNotFound) {
		t.Fatalf("err = %v, want ErrRefNotFound", err)
	}
	if want := "ref dev not found in " + url; !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %q, want it to contain %q", err, want)
	}
	st := s.Status()
	if !st.Failing() || st.Commit != newC {
		t.Fatalf("status = %+v, want failing with commit %s kept", st, newC)
	}
}

func TestSubPath(t *testing.T) {
	up := newUpstream(t)
	c1 := up.commit("one", map[string]string{"stacks/web/compose.yaml": "web\n", "README": "x"})
	c2 := up.commit("two", map[string]string{"stacks/web/compose.yaml": "", "other/compose.yaml": "o\n"})
	s := newSource(t, Config{URL: up.bare, Ref: "main", Path: "./stacks/"})
	mustFetch(t, s)

	if got := readFile(t, s, c1, "web/compose.yaml"); got != "web\n" {
		t.Fatalf("ReadFile = %q", got)
	}
	dir := t.TempDir()
	if err := s.Materialize(context.Background(), c1, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "README")); !os.IsNotExist(err) {
		t.Fatalf("file outside the sub-path was written: %v", err)
	}
	err := s.Materialize(context.Background(), c2, t.TempDir())
	if !errors.Is(err, ErrPathNotFound) {
		t.Fatalf("err = %v, want ErrPathNotFound", err)
	}
	if want := "path stacks/ not found at commit " + c2[:7]; !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %q, want %q", err, want)
	}
	_, err = s.ReadFile(c1, "web/missing.yaml")
	if !errors.Is(err, ErrPathNotFound) || !strings.Contains(err.Error(), "path stacks/web/missing.yaml not found at commit "+c1[:7]) {
		t.Fatalf("ReadFile missing = %v", err)
	}
	_, err = s.ReadFile(strings.Repeat("0", 40), "web/compose.yaml")
	if !errors.Is(err, ErrCommitNotFound) {
		t.Fatalf("ReadFile unknown commit = %v", err)
	}
}

func TestRepositoryNotFound(t *testing.T) {
	up := newUpstream(t)
	srv := serveHTTP(t, up.root, "", "")
	url := srv.URL + "/nope.git"
	s := newSource(t, Config{URL: url, Ref: "main"})
	_, err := s.Fetch(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "ls-remote "+url+": ") {
		t.Fatalf("err = %v", err)
	}
}

func TestContextCancelled(t *testing.T) {
	up := newUpstream(t)
	up.commit("one", map[string]string{"a": "a"})
	srv := serveHTTP(t, up.root, "", "")
	s := newSource(t, Config{URL: srv.URL + "/repo.git", Ref: "main"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Fetch(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// ResolveRevision knows what a fetch brought in, history included, and
// nothing more: the trigger loop asks it whether a webhook's commit shows.
func TestResolveRevisionKnowsFetchedHistoryOnly(t *testing.T) {
	up := newUpstream(t)
	c1 := up.commit("first", map[string]string{"compose.yaml": "services: {}\n"})
	c2 := up.commit("second", map[string]string{"compose.yaml": "services: {a: {image: x}}\n"})
	s := newSource(t, Config{URL: up.bare, Ref: "main"})
	mustFetch(t, s)
	c3 := up.commit("third", map[string]string{"compose.yaml": "services: {b: {image: x}}\n"})
	for _, c := range []string{c1, c2, c1[:7], "main"} {
		if _, err := s.ResolveRevision(c); err != nil {
			t.Errorf("ResolveRevision(%s): %v", c, err)
		}
	}
	if h, err := s.ResolveRevision(c3); !errors.Is(err, ErrCommitNotFound) {
		t.Errorf("ResolveRevision of a commit not fetched yet = %q, %v; want ErrCommitNotFound", h, err)
	}
	mustFetch(t, s)
	if h, err := s.ResolveRevision(c3); err != nil || h != c3 {
		t.Errorf("after the fetch, ResolveRevision(c3) = %q, %v", h, err)
	}
}
