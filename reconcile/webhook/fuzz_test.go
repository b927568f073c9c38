package webhook

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bodies to every provider's parser: it must
// never panic, must fail only with ErrBadPayload, and a parsed push must
// carry a full ref and a hex commit (or none).
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"ref":"refs/heads/main","after":null}`))
	f.Add([]byte(`{"object_kind":"push","ref":"refs/heads/x","checkout_sha":"00"}`))
	headers := []struct {
		p  Provider
		kv []string
	}{
		{GitHub, []string{HeaderGitHubEvent, "push"}},
		{Gitea, []string{HeaderGiteaEvent, "push"}},
		{GitLab, []string{HeaderGitLabEvent, "Push Hook"}},
		{GitLab, []string{HeaderGitLabEvent, "Tag Push Hook"}},
		{Generic, nil},
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, h := range headers {
			ev, err := Parse(h.p, hdr(h.kv...), body)
			if err != nil {
				if !errors.Is(err, ErrBadPayload) {
					t.Fatalf("%s: error %v is not ErrBadPayload", h.p, err)
				}
				continue
			}
			if ev.Kind != KindPush {
				continue
			}
			if !strings.HasPrefix(ev.Ref, "refs/") {
				t.Fatalf("%s: ref %q", h.p, ev.Ref)
			}
			if ev.Commit != "" && (!hexHash.MatchString(ev.Commit) || zeroHash.MatchString(ev.Commit)) {
				t.Fatalf("%s: commit %q", h.p, ev.Commit)
			}
			if ev.Deleted && ev.Commit != "" {
				t.Fatalf("%s: deleted push with commit %q", h.p, ev.Commit)
			}
		}
	})
}
