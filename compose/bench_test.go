package compose

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkLoad loads the three-tier example: files read, checked, loaded
// by compose-go, converted and validated.
func BenchmarkLoad(b *testing.B) {
	src := Source{Name: "shop", Files: []string{"../examples/shop/compose.yaml"}, Root: ".."}
	for b.Loop() {
		if _, err := Load(context.Background(), src); err != nil {
			b.Fatal(err)
		}
	}
}

// manyServices returns a stack file of n services, each with the fields a
// real service sets (about 340 bytes a service).
func manyServices(n int) string {
	var b strings.Builder
	b.WriteString("services:\n")
	for i := range n {
		fmt.Fprintf(&b, `  svc%[1]d:
    image: busybox:1.36
    command: ["sh", "-c", "echo hello %[1]d; sleep 3600"]
    environment:
      A: "value-%[1]d"
      B: "other-%[1]d"
    deploy:
      replicas: 2
      resources:
        limits: {cpus: "0.5", memory: 64M}
    labels:
      app: svc%[1]d
    healthcheck:
      test: ["CMD", "true"]
      interval: 10s
`, i)
	}
	return b.String()
}

// BenchmarkLoadServices loads generated stack files of growing size: the
// time per service must stay flat (loading is linear in the file's size).
func BenchmarkLoadServices(b *testing.B) {
	for _, n := range []int{100, 1000, 3000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			f := filepath.Join(dir, "compose.yaml")
			data := manyServices(n)
			if err := os.WriteFile(f, []byte(data), 0o644); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			src := Source{Name: "big", Files: []string{f}}
			for b.Loop() {
				if _, err := Load(context.Background(), src); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/service")
		})
	}
}

// BenchmarkLoadUnsetVariables loads stack files whose every service uses
// a variable set nowhere (each one warned about at its first use): the
// time per service must stay flat as the file grows.
func BenchmarkLoadUnsetVariables(b *testing.B) {
	for _, n := range []int{300, 3000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			var s strings.Builder
			s.WriteString("services:\n")
			for i := range n {
				fmt.Fprintf(&s, "  s%[1]d:\n    image: busybox:${TAG_%[1]d}\n    environment:\n      MODE: ${MODE_%[1]d}\n", i)
			}
			f := filepath.Join(b.TempDir(), "compose.yaml")
			if err := os.WriteFile(f, []byte(s.String()), 0o644); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(s.Len()))
			src := Source{Name: "vars", Files: []string{f}}
			for b.Loop() {
				st, err := Load(context.Background(), src)
				if err != nil {
					b.Fatal(err)
				}
				if len(st.Warnings) != 2*n {
					b.Fatalf("%d warnings, want %d", len(st.Warnings), 2*n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/service")
		})
	}
}
