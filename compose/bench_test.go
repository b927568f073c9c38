package compose

import (
	"context"
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
