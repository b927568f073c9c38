package gitsource

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMaterialize(t *testing.T) {
	up := newUpstream(t)
	up.commit("files", map[string]string{
		"stacks/web/compose.yaml": "services: {}\n",
		"stacks/web/run.sh":       "#!/bin/sh\n",
		"stacks/web/conf/a.conf":  "a\n",
		"stacks/db/compose.yaml":  "db\n",
	})
	work := up.work
	if err := os.Chmod(filepath.Join(work, "stacks/web/run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	symlink(t, "compose.yaml", filepath.Join(work, "stacks/web/alias.yaml"))
	symlink(t, "../db", filepath.Join(work, "stacks/web/db"))
	symlink(t, "nothing-here", filepath.Join(work, "stacks/web/dangling"))
	c := up.commit("modes and links", nil)

	s := newSource(t, Config{URL: up.bare, Ref: "main", Path: "stacks"})
	mustFetch(t, s)
	dir := filepath.Join(t.TempDir(), "out")
	if err := s.Materialize(context.Background(), c, dir); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"web/compose.yaml":    "services: {}\n",
		"web/alias.yaml":      "services: {}\n",
		"web/conf/a.conf":     "a\n",
		"web/db/compose.yaml": "db\n",
	} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	for name, want := range map[string]os.FileMode{"web/run.sh": 0o755, "web/compose.yaml": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s mode = %v, %v; want %v", name, fi.Mode().Perm(), err, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "web/dangling")); !os.IsNotExist(err) {
		t.Errorf("dangling symlink was kept: %v", err)
	}
	if got := readFile(t, s, c, "web/alias.yaml"); got != "services: {}\n" {
		t.Errorf("ReadFile through symlink = %q", got)
	}
	if err := s.Materialize(context.Background(), c, dir); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("Materialize into a used dir = %v, want ErrNotEmpty", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Materialize(ctx, c, t.TempDir()); !errors.Is(err, context.Canceled) {
		t.Errorf("Materialize with cancelled ctx = %v", err)
	}
}

func TestMaterializeRefusesEscapingSymlinks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		links map[string]string // link path -> target
	}{
		{"parent", map[string]string{"s/evil": "../../etc/passwd"}},
		{"out of sub-path", map[string]string{"s/up": "../outside.txt"}},
		{"absolute", map[string]string{"s/abs": "/etc/passwd"}},
		// Each link alone stays inside lexically, together they leave:
		// a -> b/.. where b -> c and c -> . resolves to the parent of s.
		{"chain", map[string]string{"s/c": ".", "s/b": "c", "s/a": "b/../outside.txt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t)
			up.commit("base", map[string]string{"outside.txt": "secret\n", "s/compose.yaml": "x\n"})
			for link, target := range tc.links {
				symlink(t, target, filepath.Join(up.work, link))
			}
			c := up.commit("links", nil)
			s := newSource(t, Config{URL: up.bare, Ref: "main", Path: "s"})
			mustFetch(t, s)
			// Something real beside the output dir for an escape to reach.
			tmp := t.TempDir()
			if err := os.WriteFile(filepath.Join(tmp, "outside.txt"), []byte("secret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(tmp, "out")
			err := s.Materialize(context.Background(), c, dir)
			if !errors.Is(err, ErrUnsafeSymlink) {
				t.Fatalf("err = %v, want ErrUnsafeSymlink", err)
			}
			if !strings.Contains(err.Error(), "at commit "+c[:7]) {
				t.Fatalf("err = %q, want the commit named", err)
			}
			for link := range tc.links {
				if _, err := s.ReadFile(c, strings.TrimPrefix(link, "s/")); err == nil {
					t.Errorf("ReadFile %s followed an escaping link", link)
				}
			}
		})
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
