package compose

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// laughs is a "billion laughs" document: levels of anchors, each a list
// of fan aliases of the one before, used once by a service.
func laughs(levels, fan int) string {
	var b strings.Builder
	b.WriteString("x-a0: &a0 [" + strings.TrimSuffix(strings.Repeat(`"lol",`, fan), ",") + "]\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "x-a%d: &a%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d,", i-1), fan), ","))
	}
	fmt.Fprintf(&b, "services:\n  web:\n    image: x\n    command: *a%d\n", levels)
	return b.String()
}

// Hostile stack files are refused with a diagnostic at their line, before
// compose-go spends memory on them: at most 32 MiB allocated for each
// (DESIGN: timing belongs in benchmarks; allocation is deterministic).
func TestHostileYAMLRefusedWithBoundedMemory(t *testing.T) {
	deepBlock := func(levels int) string {
		var b strings.Builder
		b.WriteString("services:\n  web:\n    image: x\nx-deep:\n")
		for i := range levels {
			b.WriteString(strings.Repeat(" ", i+1) + "k:\n")
		}
		return b.String()
	}
	cases := []struct {
		name, yaml, want string
	}{
		{"billion_laughs", laughs(9, 9), "compose.yaml:1: invalid YAML: document contains excessive aliasing"},
		{"aliases_a_little", laughs(3, 30), "compose.yaml:1: invalid YAML: document contains excessive aliasing"},
		{"nested_flow_10k", "services:\n  web:\n    image: x\n    labels:\n      a: " + strings.Repeat("[", 9990) + strings.Repeat("]", 9990) + "\n",
			"compose.yaml:5: nested deeper than 64 levels of mappings and sequences"},
		{"nested_flow_past_yaml_limit", "services:\n  web:\n    image: x\n    labels:\n      a: " + strings.Repeat("[", 200_000) + strings.Repeat("]", 200_000) + "\n",
			"compose.yaml:5: invalid YAML: exceeded max depth of 10000"},
		{"nested_block", deepBlock(100), "compose.yaml:68: nested deeper than 64 levels of mappings and sequences"},
		{"over_size_limit", "services:\n  web:\n    image: x\n" + strings.Repeat("# padding\n", 110_000), "compose.yaml: 1.05 MiB, over the limit of 1 MiB for a stack file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "compose.yaml")
			if err := os.WriteFile(f, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			st, err := Load(context.Background(), Source{Name: "x", Files: []string{f}, Root: dir, Tree: dir})
			runtime.ReadMemStats(&after)
			if err == nil || st != nil {
				t.Fatalf("loaded (%v)", err)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n%v\nwant:\n%s", err, tc.want)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
				t.Errorf("allocated %d MiB for a %d KiB file", alloc>>20, len(tc.yaml)>>10)
			}
		})
	}
}

// compose-go panics on include: beside a null services: (found by
// FuzzLoadStaysInTree), which crashed the loading process; the load fails
// with the raw pass's diagnostic instead.
func TestComposePanicIsAnError(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "lib.yaml"), "services:\n  lib:\n    image: lib\n")
	writeFile(t, filepath.Join(dir, "compose.yaml"), "include: [lib.yaml]\nservices:\n")
	_, err := Load(context.Background(), Source{Name: "x", Files: []string{filepath.Join(dir, "compose.yaml")}, Root: dir, Tree: dir})
	if want := "compose.yaml:2: services: must be a mapping, not null"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

// Files a stack reads are refused over their limits, at the line that
// names them, before they are read.
func TestFilesOverTheLimits(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		src   Source
		want  string
	}{
		{
			name: "config_file",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: x\n    configs: [c]\nconfigs:\n  c:\n    file: big.txt\n",
				"big.txt": strings.Repeat("x", 5<<20)},
			want: "compose.yaml:7: configs.c.file: big.txt is 5 MiB, over the limit of 4 MiB for a secret or config file",
		},
		{
			name: "config_file_from_variable",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: x\n    configs: [c]\nconfigs:\n  c:\n    file: ${F:-big.txt}\n",
				"big.txt": strings.Repeat("x", 5<<20)},
			want: "compose.yaml:7: configs.c.file: ./big.txt is 5 MiB, over the limit of 4 MiB for a secret or config file",
		},
		{
			name: "env_file",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: x\n    env_file: app.env\n",
				"app.env": strings.Repeat("A=1\n", 300_000)},
			want: "compose.yaml:4: services.web.env_file: app.env is 1.14 MiB, over the limit of 1 MiB for an env or label file",
		},
		{
			name: "dotenv",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: x\n",
				".env": strings.Repeat("A=1\n", 300)},
			src:  Source{MaxFileBytes: 1000},
			want: ".env: 1.17 KiB, over the limit of 1000 B for an env file",
		},
		{
			name:  "included_file",
			files: map[string]string{"compose.yaml": "include: [lib.yaml]\n", "lib.yaml": "services:\n  lib:\n    image: lib\n" + strings.Repeat("#\n", 600)},
			src:   Source{MaxFileBytes: 1000},
			want:  "compose.yaml:1: include.0: lib.yaml is 1.2 KiB, over the limit of 1000 B for a stack file",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				writeFile(t, filepath.Join(dir, name), content)
			}
			src := tc.src
			src.Name, src.Files, src.Root, src.Tree = "x", []string{filepath.Join(dir, "compose.yaml")}, dir, dir
			_, err := Load(context.Background(), src)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error:\n%v\nwant:\n%s", err, tc.want)
			}
		})
	}
}
