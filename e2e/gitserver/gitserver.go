package gitserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gitorc/gitorc/reconcile/webhook"
)

// HTTPBackend is Debian's git http-backend.
const HTTPBackend = "/usr/lib/git-core/git-http-backend"

// Requirements returns why the package cannot work here, or "".
func Requirements() string {
	if _, err := exec.LookPath("git"); err != nil {
		return "needs the git CLI"
	}
	if _, err := os.Stat(HTTPBackend); err != nil {
		return "needs " + HTTPBackend + " (apt install git)"
	}
	return ""
}

// Repo is a bare repository (what the server serves) and a working clone
// on branch main that pushes to it.
type Repo struct {
	Root string // the served directory: Root/repo.git
	Bare string
	Work string
}

// NewRepo creates an empty bare repository and its working clone under dir.
func NewRepo(dir string) (*Repo, error) {
	r := &Repo{Root: filepath.Join(dir, "served"), Work: filepath.Join(dir, "work")}
	r.Bare = filepath.Join(r.Root, "repo.git")
	for _, d := range []string{r.Root, r.Work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if _, err := git(r.Root, "init", "-q", "--bare", "-b", "main", r.Bare); err != nil {
		return nil, err
	}
	if _, err := git(r.Work, "init", "-q", "-b", "main"); err != nil {
		return nil, err
	}
	if _, err := git(r.Work, "remote", "add", "origin", r.Bare); err != nil {
		return nil, err
	}
	return r, nil
}

// Commit writes files (an empty content removes one), commits on branch
// and pushes it; it returns the commit.
func (r *Repo) Commit(branch, msg string, files map[string]string) (string, error) {
	c, err := r.CommitLocal(branch, msg, files)
	if err != nil {
		return "", err
	}
	return c, r.Push(branch)
}

// Push pushes branch of the working clone to the served repository.
func (r *Repo) Push(branch string) error {
	_, err := git(r.Work, "push", "-q", "-f", "origin", "HEAD:refs/heads/"+branch)
	return err
}

// CommitLocal is Commit without the push: the server does not show the
// commit until Push.
func (r *Repo) CommitLocal(branch, msg string, files map[string]string) (string, error) {
	if _, err := git(r.Work, "checkout", "-q", "-B", branch); err != nil {
		return "", err
	}
	for name, content := range files {
		p := filepath.Join(r.Work, filepath.FromSlash(name))
		if content == "" {
			if err := os.RemoveAll(p); err != nil {
				return "", err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	if _, err := git(r.Work, "add", "-A"); err != nil {
		return "", err
	}
	if _, err := git(r.Work, "commit", "-q", "--allow-empty", "-m", msg); err != nil {
		return "", err
	}
	return git(r.Work, "rev-parse", "HEAD")
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=gitorc-test", "GIT_AUTHOR_EMAIL=test@gitorc.invalid",
		"GIT_COMMITTER_NAME=gitorc-test", "GIT_COMMITTER_EMAIL=test@gitorc.invalid", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// Server serves a Repo's Root with git http-backend.
type Server struct {
	// URL is the repository's clone URL.
	URL string
	srv *http.Server
}

// Serve serves r on addr ("127.0.0.1:0", or a bridge address for hosts
// in network namespaces) until Close.
func Serve(r *Repo, addr string) (*Server, error) {
	if why := Requirements(); why != "" {
		return nil, errors.New(why)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	backend := &cgi.Handler{Path: HTTPBackend, Stderr: io.Discard,
		Env: []string{"GIT_PROJECT_ROOT=" + r.Root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + r.Root}}
	s := &Server{URL: "http://" + ln.Addr().String() + "/repo.git", srv: &http.Server{Handler: backend, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// GitHubPush is the body of a GitHub push delivery.
func GitHubPush(branch, commit string) []byte {
	b, _ := json.Marshal(map[string]any{"ref": "refs/heads/" + branch, "after": commit, "before": strings.Repeat("0", 40),
		"repository": map[string]string{"full_name": "ops/stacks"}})
	return b
}

// Deliver posts a GitHub push delivery for branch at commit to a gitorc
// webhook endpoint (base is "http://host:port"), signed with secret, and
// returns the status and the answer's message.
func Deliver(ctx context.Context, base string, secret []byte, branch, commit string) (int, string, error) {
	body := GitHubPush(branch, commit)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/hooks/github", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhook.HeaderGitHubEvent, "push")
	req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("d-%d", time.Now().UnixNano()))
	req.Header.Set(webhook.HeaderHubSignature256, webhook.Sign(secret, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var r webhook.Response
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return resp.StatusCode, "", fmt.Errorf("webhook answer: %w", err)
	}
	return resp.StatusCode, r.Message, nil
}
