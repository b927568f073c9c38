package containerd_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gitorc/gitorc/cluster/agent/containerd"
	"github.com/gitorc/gitorc/cluster/agent/containerd/imagetest"
	"github.com/gitorc/gitorc/cluster/api"
)

// A registry that asks for credentials: a pull without a login says which
// registry refused it and that the cluster has no login for it; a wrong
// login says so; the managers' login (in memory) pulls.
func TestPrivateRegistryPull_Root(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	dir := netTestDir(t)
	reg, err := imagetest.StartAuthRegistryOn(ctx, filepath.Join(dir, "registry"), "127.0.0.1", "puller", "s3cret-pw", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Stop()
	img, err := imagetest.Busybox(ocispec.ImageConfig{Cmd: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reg.Push(ctx, img, "private/busybox", "1")
	if err != nil {
		t.Fatal(err)
	}
	e, err := containerd.New(ctx, containerd.Config{DataDir: filepath.Join(dir, "exec"), Address: env.exec.Address(),
		InsecureRegistries: []string{reg.Addr}, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	_, err = e.Pull(ctx, ref, nil)
	if err == nil || !strings.Contains(err.Error(), "registry "+reg.Addr+" refused the pull") || !strings.Contains(err.Error(), "gitorc registry login "+reg.Addr) {
		t.Errorf("pull without a login: %v", err)
	}
	e.SetRegistryLogins(map[string]api.RegistryLogin{reg.Addr: {Username: "puller", Password: api.SecretBytes("wrong")}})
	_, err = e.Pull(ctx, ref, nil)
	if err == nil || !strings.Contains(err.Error(), "refused the cluster's login") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("pull with a wrong login: %v", err)
	}
	e.SetRegistryLogins(map[string]api.RegistryLogin{reg.Addr: {Username: "puller", Password: api.SecretBytes("s3cret-pw")}})
	if _, err := e.Pull(ctx, ref, nil); err != nil {
		t.Errorf("pull with the login: %v", err)
	}
}
