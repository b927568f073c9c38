package gittest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Repo is a working repository on branch main.
type Repo struct {
	tb  testing.TB
	Dir string
}

// New initializes a repository in dir (a new temporary directory when dir
// is empty). It skips the test when the git CLI is missing.
func New(tb testing.TB, dir string) *Repo {
	tb.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		tb.Skip("needs the git CLI")
	}
	if dir == "" {
		dir = tb.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	r := &Repo{tb: tb, Dir: dir}
	r.Git("init", "-q", "-b", "main")
	return r
}

// Git runs git in the repository with a fixed identity and no global
// configuration, and returns its trimmed output; a failure fails the test.
func (r *Repo) Git(args ...string) string {
	r.tb.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.Dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.tb.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// Write changes the working tree: each file's content, or its removal
// when the content is empty.
func (r *Repo) Write(files map[string]string) {
	r.tb.Helper()
	for name, content := range files {
		p := filepath.Join(r.Dir, name)
		if content == "" {
			if err := os.Remove(p); err != nil {
				r.tb.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.tb.Fatal(err)
		}
	}
}

// Commit writes files and commits everything (an empty commit when
// nothing changed); it returns the commit's hash.
func (r *Repo) Commit(msg string, files map[string]string) string {
	r.tb.Helper()
	r.Write(files)
	r.Git("add", "-A")
	r.Git("commit", "-q", "--allow-empty", "-m", msg)
	return r.Git("rev-parse", "HEAD")
}
