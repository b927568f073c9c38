package gitsource

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// A commit's tree is refused, from its object headers, when a file, the
// sum of its files or the number of its entries is over the limits, with
// an error naming the path and the limit; ReadFile refuses a file over
// the file limit too.
func TestMaterializeLimits(t *testing.T) {
	up := newUpstream(t)
	big := strings.Repeat("0123456789abcdef", 5<<16) // 5 MiB
	cases := []struct {
		name    string
		files   map[string]string
		cfg     Config
		want    string // the error, COMMIT for the short commit
		readErr string // ReadFile of "stacks/big.bin", when not ""
	}{
		{
			name:    "default_file_limit",
			files:   map[string]string{"stacks/compose.yaml": "services: {}\n", "stacks/big.bin": big},
			want:    "stacks/big.bin at commit COMMIT: 5 MiB, over the limit of 4 MiB for a file",
			readErr: "stacks/big.bin at commit COMMIT: 5 MiB, over the limit of 4 MiB for a file",
		},
		{
			name:  "file_limit",
			files: map[string]string{"stacks/compose.yaml": "services: {}\n", "stacks/big.bin": strings.Repeat("x", 3000)},
			cfg:   Config{MaxFileBytes: 1024},
			want:  "stacks/big.bin at commit COMMIT: 2.93 KiB, over the limit of 1 KiB for a file",
		},
		{
			name: "tree_bytes",
			files: map[string]string{"stacks/a": strings.Repeat("a", 900), "stacks/b": strings.Repeat("b", 900),
				"stacks/c": strings.Repeat("c", 900)},
			cfg:  Config{MaxTreeBytes: 2048},
			want: "tree at commit COMMIT: over the limit of 2 KiB (at stacks/c)",
		},
		{
			name:  "tree_entries",
			files: map[string]string{"stacks/a/1": "1", "stacks/a/2": "2", "stacks/b/3": "3"},
			cfg:   Config{MaxTreeEntries: 4},
			want:  "tree at commit COMMIT: more than 4 files and directories (at stacks/b)",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up.commit("reset", map[string]string{"stacks": ""})
			c := up.commit(tc.name, tc.files)
			cfg := tc.cfg
			cfg.URL, cfg.Ref = up.bare, "main"
			s := newSource(t, cfg)
			mustFetch(t, s)
			want := strings.ReplaceAll(tc.want, "COMMIT", c[:7])
			err := s.Materialize(context.Background(), c, filepath.Join(t.TempDir(), "out"))
			if !errors.Is(err, ErrTooLarge) || err.Error() != want {
				t.Errorf("Materialize = %v\nwant ErrTooLarge: %s", err, want)
			}
			if tc.readErr != "" {
				_, err := s.ReadFile(c, "stacks/big.bin")
				if want := strings.ReplaceAll(tc.readErr, "COMMIT", c[:7]); !errors.Is(err, ErrTooLarge) || err.Error() != want {
					t.Errorf("ReadFile = %v\nwant ErrTooLarge: %s", err, want)
				}
			}
		})
	}
}

// Within the limits, a tree is written whole.
func TestMaterializeWithinLimits(t *testing.T) {
	up := newUpstream(t)
	files := map[string]string{}
	for i := range 4 {
		files[fmt.Sprintf("stacks/s%d/compose.yaml", i)] = strings.Repeat("#", 200) + "\n"
	}
	c := up.commit("four", files)
	// 4 files of 201 B, 5 directories: exactly at both limits.
	s := newSource(t, Config{URL: up.bare, Ref: "main", MaxFileBytes: 201, MaxTreeBytes: 4 * 201, MaxTreeEntries: 9})
	mustFetch(t, s)
	if err := s.Materialize(context.Background(), c, filepath.Join(t.TempDir(), "out")); err != nil {
		t.Fatal(err)
	}
}
