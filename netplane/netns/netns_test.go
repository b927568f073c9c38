package netns

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// A namespace made by Create is a different one, Do runs code inside it
// (a listener there is not seen from here), and Remove ends it.
func TestCreateDoRemove_Root(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	path := filepath.Join(t.TempDir(), "ns")
	if err := Create(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Remove(path) })
	if err := Create(path); err != nil {
		t.Fatalf("second Create: %v", err)
	}
	ns := NS{Path: path}
	var inside []net.Interface
	if err := ns.Do(func() (err error) { inside, err = net.Interfaces(); return err }); err != nil {
		t.Fatal(err)
	}
	if len(inside) != 1 || inside[0].Name != "lo" {
		t.Fatalf("a new namespace has only lo, got %v", inside)
	}
	h, err := ns.Handle()
	if err != nil {
		t.Fatal(err)
	}
	own, _ := NS{}.Handle()
	if h.Equal(own) {
		t.Fatal("the created namespace is the process's own")
	}
	h.Close()
	own.Close()
	if err := Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("namespace file left: %v", err)
	}
	if err := Remove(path); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if err := ns.Do(func() error { return nil }); err == nil {
		t.Fatal("Do in a removed namespace succeeded")
	}
}
