package node

import (
	"testing"
)

// restarted is the node of dir started again from its files alone.
func restarted(t *testing.T, dir, name string) (*daemon, func()) {
	t.Helper()
	st, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loadPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{dir: dir, state: st, pki: p}
	return d, startNode(t, d, name)
}
