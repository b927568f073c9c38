package gitsource

import (
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

const httpBackend = "/usr/lib/git-core/git-http-backend"

// gitEnv isolates the git CLI from the machine's configuration.
func gitEnv(home string) []string {
	return append(os.Environ(),
		"HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_TERMINAL_PROMPT=0",
	)
}

func runGit(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	cmd := exec.Command("git", append([]string{"-c", "init.defaultBranch=main", "-c", "protocol.file.allow=always"}, args...)...)
	cmd.Dir = dir
	cmd.Env = gitEnv(dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// upstream is a real Git server side: a bare repository under root (served
// by file path or git http-backend) and a working clone that pushes to it.
type upstream struct {
	tb   testing.TB
	root string // GIT_PROJECT_ROOT
	bare string // root/repo.git
	work string
}

func newUpstream(tb testing.TB) *upstream {
	tb.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		tb.Skip("git CLI not installed")
	}
	root := tb.TempDir()
	u := &upstream{tb: tb, root: root, bare: filepath.Join(root, "repo.git"), work: filepath.Join(tb.TempDir(), "work")}
	runGit(tb, root, "init", "-q", "--bare", u.bare)
	runGit(tb, root, "init", "-q", u.work)
	runGit(tb, u.work, "remote", "add", "origin", u.bare)
	return u
}

// commit writes files (content "" deletes), commits on the current branch
// and pushes it to the same branch upstream. It returns the commit hash.
func (u *upstream) commit(msg string, files map[string]string) string {
	u.tb.Helper()
	for name, content := range files {
		p := filepath.Join(u.work, filepath.FromSlash(name))
		if content == "" {
			if err := os.RemoveAll(p); err != nil {
				u.tb.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			u.tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			u.tb.Fatal(err)
		}
	}
	runGit(u.tb, u.work, "add", "-A")
	runGit(u.tb, u.work, "commit", "-q", "--allow-empty", "-m", msg)
	branch := runGit(u.tb, u.work, "rev-parse", "--abbrev-ref", "HEAD")
	runGit(u.tb, u.work, "push", "-q", "-f", "origin", "HEAD:refs/heads/"+branch)
	return runGit(u.tb, u.work, "rev-parse", "HEAD")
}

func (u *upstream) git(args ...string) string { u.tb.Helper(); return runGit(u.tb, u.work, args...) }

// gitHTTP serves root with a real git http-backend through net/http/cgi on
// 127.0.0.1, optionally behind basic auth, and counts the upload-pack
// POSTs (the requests that transfer objects; ls-remote is a GET).
type gitHTTP struct {
	URL         string // base URL; the repository is URL + "/repo.git"
	uploadPacks atomic.Int64
	requests    atomic.Int64
}

func serveHTTP(tb testing.TB, root, user, pass string) *gitHTTP {
	tb.Helper()
	if _, err := os.Stat(httpBackend); err != nil {
		tb.Skip("git http-backend not installed")
	}
	g := &gitHTTP{}
	backend := &cgi.Handler{
		Path:   httpBackend,
		Stderr: io.Discard,
		Env:    []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + root},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.requests.Add(1)
		if user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-upload-pack") {
			g.uploadPacks.Add(1)
		}
		backend.ServeHTTP(w, r)
	}))
	tb.Cleanup(srv.Close)
	g.URL = srv.URL
	return g
}
