package reconcile

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

func TestRefEvent(t *testing.T) {
	g := "/repo/.git"
	for _, tc := range []struct {
		name string
		op   fsnotify.Op
		want bool
	}{
		{"/repo/.git/refs/heads/main", fsnotify.Create, true},
		{"/repo/.git/refs/heads/feature/x", fsnotify.Rename, true},
		{"/repo/.git/refs/tags/v1", fsnotify.Create, true},
		{"/repo/.git/refs/heads/main.lock", fsnotify.Create, false},
		{"/repo/.git/packed-refs", fsnotify.Create, true},
		{"/repo/.git/HEAD", fsnotify.Write, true},
		{"/repo/.git/index", fsnotify.Write, false},
		{"/repo/.git/ORIG_HEAD", fsnotify.Create, false},
		{"/repo/.git/refs/heads/main", fsnotify.Chmod, false},
	} {
		if got := refEvent(g, fsnotify.Event{Name: tc.name, Op: tc.op}); got != tc.want {
			t.Errorf("refEvent(%s %s) = %v, want %v", tc.op, tc.name, got, tc.want)
		}
	}
}

// A commit in a local repository, on a new branch namespace too, is
// seen by WatchRefs.
func TestWatchRefsSeesCommits(t *testing.T) {
	r := newGitRepo(t)
	r.commit("first", map[string]string{"a": "1"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := WatchRefs(ctx, r.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := func(what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("no change seen after %s", what)
		}
		// Drain what the same git command caused.
		for {
			select {
			case <-ch:
				continue
			case <-time.After(50 * time.Millisecond):
			}
			return
		}
	}
	r.commit("second", map[string]string{"a": "2"})
	seen("a commit")
	r.git("checkout", "-q", "-b", "team/feature")
	seen("a new branch in a new namespace")
	r.commit("third", map[string]string{"a": "3"})
	seen("a commit on team/feature")

	if _, err := WatchRefs(ctx, t.TempDir(), nil); err == nil {
		t.Error("a directory that is no repository was watched")
	}
	bare := filepath.Join(t.TempDir(), "bare.git")
	r.git("clone", "-q", "--bare", r.dir, bare)
	if _, err := WatchRefs(ctx, bare, nil); err != nil {
		t.Errorf("bare repository: %v", err)
	}
}
