package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/e2e/gitserver"
	"github.com/gitorc/gitorc/reconcile/gitsource"
	"github.com/gitorc/gitorc/reconcile/storecluster"
)

func TestRefuseURLCredentials(t *testing.T) {
	for _, tc := range []struct {
		url     string
		refused bool
	}{
		{"https://git.example.com/ops/stacks.git", false},
		{"https://user:t0ken@git.example.com/ops/stacks.git", true},
		{"https://t0ken@git.example.com/ops/stacks.git", true}, // a lone user name over https is often a token
		{"http://git:t0ken@127.0.0.1:8080/repo.git", true},
		{"ssh://git@git.example.com/ops/stacks.git", false},
		{"ssh://git:t0ken@git.example.com/ops/stacks.git", true},
		{"git@git.example.com:ops/stacks.git", false},
		{"/srv/git/stacks", false},
		{"", false},
	} {
		err := gitsource.RefuseURLCredentials("--repo", tc.url)
		if (err != nil) != tc.refused {
			t.Errorf("%s: %v, want refused %v", tc.url, err, tc.refused)
			continue
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, gitsource.ErrURLCredentials) || !strings.Contains(err.Error(), "--git-password-file") {
			t.Errorf("%s: %v, want gitsource.ErrURLCredentials pointing to --git-password-file", tc.url, err)
		}
		if strings.Contains(err.Error(), "t0ken") {
			t.Errorf("%s: the refusal shows the credential: %v", tc.url, err)
		}
	}
}

// source set --repo refuses credentials in the URL on the server too
// (any API client), and a change of another field of a source that an
// older version stored with credentials still goes through.
func TestSourcePatchRefusesURLCredentials(t *testing.T) {
	cur := api.SourceSpec{URL: "https://git.example.com/a.git", Interval: api.Duration(time.Minute), Revert: "auto"}
	bad := "https://u:t0ken@git.example.com/b.git"
	if _, err := applySource(controlapi.SourcePatch{Repo: &bad}, cur); !errors.Is(err, gitsource.ErrURLCredentials) || strings.Contains(err.Error(), "t0ken") {
		t.Fatalf("apply --repo with credentials = %v", err)
	}
	legacy := cur
	legacy.URL = bad
	iv := api.Duration(time.Hour)
	if _, err := applySource(controlapi.SourcePatch{Interval: &iv}, legacy); err != nil {
		t.Fatalf("apply --interval on a legacy source = %v", err)
	}
	user := "deploy"
	if _, err := applySource(controlapi.SourcePatch{GitUsername: &user}, cur); err == nil {
		t.Error("--git-username without --git-password-file accepted")
	}
	pass, local := "t0ken", "/srv/git/a"
	if _, err := applySource(controlapi.SourcePatch{Repo: &local, GitPassword: &pass}, cur); err == nil {
		t.Error("--git-password-file for a local repository accepted")
	}
}

func TestRedactSource(t *testing.T) {
	s := redactSource(api.SourceSpec{URL: "https://u:t0ken@git.example.com/a.git",
		Notify: &api.NotifySpec{URL: "https://n:n0tify@hooks.example.com/x"}})
	if strings.Contains(s.URL, "t0ken") || strings.Contains(s.Notify.URL, "n0tify") {
		t.Fatalf("redactSource = %+v %+v", s, s.Notify)
	}
}

// An existing data dir keeps its mode unless the daemon makes it
// private; so do the directories of an existing Git clone.
func TestPrivateDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	clone := filepath.Join(dir, "gitops", "repo", "objects", "pack")
	if err := os.MkdirAll(clone, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gitops", "repo", "HEAD"), []byte("ref: refs/heads/main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := privateDataDir(dir); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, dir, true)
	// A data dir without clones is fine.
	other := t.TempDir()
	if err := privateDataDir(other); err != nil {
		t.Fatal(err)
	}
}

// checkPrivate fails unless dir, its gitops directory and the clone's
// root are closed to group and others, and with all, every directory
// under gitops (a restart closes those a clone opened).
func checkPrivate(t *testing.T, dir string, all bool) {
	t.Helper()
	for _, p := range []string{dir, filepath.Join(dir, "gitops"), filepath.Join(dir, "gitops", "repo")} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v (%v), want 0700", p, fi.Mode().Perm(), err)
		}
	}
	if !all {
		return
	}
	_ = filepath.WalkDir(filepath.Join(dir, "gitops"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		if fi, err := e.Info(); err == nil && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is open to others: %v", p, fi.Mode().Perm())
		}
		return nil
	})
}

// authServer serves repo by git http-backend to clients that give
// user and password (HTTP basic auth) only.
func authServer(t *testing.T, repo *gitserver.Repo, user, password string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend := &cgi.Handler{Path: gitserver.HTTPBackend, Stderr: os.Stderr,
		Env: []string{"GIT_PROJECT_ROOT=" + repo.Root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + repo.Root}}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/repo.git"
}

// A repository that needs a password: bootstrap refuses it in the URL and
// takes it apart instead (what gitorc bootstrap reads from
// --git-password-file), as a cluster key; the node follows the
// repository; the password is in no file of the node, no sync status and
// no log; a source change refuses a URL with credentials; a URL an older
// version stored with them is shown redacted. The data dir, which existed
// with mode 0755, and the clone are private.
func TestPrivateRepoPasswordFile(t *testing.T) {
	if why := gitserver.Requirements(); why != "" {
		t.Skip(why)
	}
	ctx := context.Background()
	const password = "t0ken-s3cret-pw"
	tmp := t.TempDir()
	repo, err := gitserver.NewRepo(filepath.Join(tmp, "git"))
	if err != nil {
		t.Fatal(err)
	}
	first, err := repo.Commit("main", "first", zeroReplicaStack("busybox:1"))
	if err != nil {
		t.Fatal(err)
	}
	url := authServer(t, repo, "deploy", password)
	dir := filepath.Join(tmp, "m")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	flags := testFlags{dataDir: dir, listen: freeAddr(t), raftListen: freeAddr(t), noWorker: true, plan: testPlan,
		branch: "main", interval: time.Hour}
	withCreds := flags
	withCreds.repo = strings.Replace(url, "http://", "http://deploy:"+password+"@", 1)
	if _, err := testBootstrap(withCreds); !errors.Is(err, gitsource.ErrURLCredentials) || strings.Contains(err.Error(), password) {
		t.Fatalf("bootstrap with credentials in --repo = %v", err)
	}
	flags.repo, flags.gitUsername, flags.gitPassword = url, "deploy", password
	d, err := testBootstrap(flags)
	if err != nil {
		t.Fatal(err)
	}
	logs := startLoggedNode(t, d)
	socket := socketFile(dir)
	waitSync(t, socket, "synced the private repository", func(r controlapi.SyncReport) bool {
		return r.State.Revision == first && r.State.Phase == api.SyncSynced
	})
	checkPrivate(t, dir, false)
	if _, err := os.Stat(filepath.Join(dir, "gitops", "repo")); err != nil {
		t.Errorf("no clone: %v", err)
	}

	// A source change with credentials in the URL, from an API client
	// that skips the CLI's own check (gitsource.RefuseURLCredentials,
	// above): refused, pointing to --git-password-file, nothing changed.
	_, err = client.Unix(socket).SetSource(ctx, controlapi.SourcePatch{Repo: &withCreds.repo})
	if err == nil || !strings.Contains(err.Error(), "--git-password-file") || strings.Contains(err.Error(), password) {
		t.Errorf("PATCH /v1/source with credentials in the URL = %v", err)
	}
	if st := statusOf(t, socket); st.State.Source.URL != url {
		t.Errorf("source now %q", st.State.Source.URL)
	}
	// New credentials (gitorc source set --git-password-file): stored,
	// reported as set.
	user, pass := "deploy", password
	if rep, err := client.Unix(socket).SetSource(ctx, controlapi.SourcePatch{GitUsername: &user, GitPassword: &pass}); err != nil ||
		!rep.GitCredentialsSet {
		t.Errorf("source set --git-password-file: %+v %v", rep, err)
	}

	// No file of the node holds the password in clear (the cluster key
	// is encrypted at rest).
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || e.Type()&fs.ModeSocket != 0 {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(password)) {
			t.Errorf("%s holds the Git password in clear", p)
		}
		return nil
	})

	// A URL an older version kept with its credentials is shown redacted,
	// in the sync report gitorc status prints (as text or JSON).
	if _, err := storecluster.New(d.store).UpdateSync(ctx, func(s *api.SyncState) error {
		s.Source.URL = withCreds.repo
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rep := statusOf(t, socket)
	if !strings.Contains(rep.State.Source.URL, "deploy:***@") {
		t.Errorf("the sync report does not show the redacted URL: %q", rep.State.Source.URL)
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for what, s := range map[string]string{"the sync report": string(js), "the log": logs.String()} {
		if strings.Contains(s, password) {
			t.Errorf("%s shows the Git password", what)
		}
	}
}
