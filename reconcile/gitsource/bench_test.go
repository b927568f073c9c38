package gitsource

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkResolveUnchanged is the poll loop's cost when nothing changed:
// one ls-remote against a real git http-backend (a CGI process per
// request) and the local presence check, no object transfer.
func BenchmarkResolveUnchanged(b *testing.B) {
	up := newUpstream(b)
	up.commit("one", map[string]string{"compose.yaml": "x\n"})
	srv := serveHTTP(b, up.root, "", "")
	s := newSource(b, Config{URL: srv.URL + "/repo.git", Ref: "main"})
	mustFetch(b, s)
	before := srv.uploadPacks.Load()
	b.ResetTimer()
	for b.Loop() {
		if rev := mustFetch(b, s); rev.Fetched {
			b.Fatal("fetched although nothing changed")
		}
	}
	if srv.uploadPacks.Load() != before {
		b.Fatal("upload-pack was called")
	}
}

// BenchmarkFetchNewCommit fetches one new commit (one changed file) per
// iteration; the git CLI commit and push are outside the timed section.
func BenchmarkFetchNewCommit(b *testing.B) {
	up := newUpstream(b)
	files := map[string]string{}
	for i := range 50 {
		files[fmt.Sprintf("stacks/s%02d/compose.yaml", i)] = fmt.Sprintf("services: {s%d: {image: busybox}}\n", i)
	}
	up.commit("base", files)
	srv := serveHTTP(b, up.root, "", "")
	s := newSource(b, Config{URL: srv.URL + "/repo.git", Ref: "main"})
	mustFetch(b, s)
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		want := up.commit(fmt.Sprint("c", i), map[string]string{"stacks/s00/compose.yaml": fmt.Sprintf("services: {s0: {image: busybox:%d}}\n", i)})
		b.StartTimer()
		rev, err := s.Fetch(context.Background())
		if err != nil || rev.Commit != want || !rev.Fetched {
			b.Fatalf("Fetch = %+v, %v; want %s fetched", rev, err, want)
		}
	}
}
