package e2e

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gitorc/gitorc/cluster/agent/containerd/imagetest"
	"github.com/gitorc/gitorc/cluster/api"
)

// A private registry (htpasswd): a task whose image it holds fails
// without a login, saying which registry refused it and what to do;
// after gitorc registry login, every node pulls; the password is in no
// file of any node, nor in the logs.
func TestPrivateRegistry_Root(t *testing.T) {
	c := hostsWithRegistry(t, 3)
	ctx := context.Background()
	const password = "pw-private-registry-canary"
	priv, err := imagetest.StartAuthRegistryOn(ctx, filepath.Join(t.TempDir(), "private"), c.nw.Gateway.String(), "puller", password, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(priv.Stop)
	img, err := imagetest.Busybox(ocispec.ImageConfig{Cmd: []string{"sleep", "3600"}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := priv.Push(ctx, img, "team/app", "1")
	if err != nil {
		t.Fatal(err)
	}
	startNodes(c, 3, []string{"--insecure-registry", priv.Addr})
	c.deployApp(`services:
  web:
    image: ` + ref + `
    deploy:
      mode: global
`)
	c.waitFor("a task refused by the registry", 120*time.Second, func() bool {
		for _, x := range c.tasks("app") {
			if strings.Contains(x.Status.Err, "registry "+priv.Addr+" refused the pull") && strings.Contains(x.Status.Err, "gitorc registry login "+priv.Addr) {
				return true
			}
		}
		return false
	})

	login := exec.Command(c.bin, "--socket", c.socket, "registry", "login", priv.Addr, "-u", "puller", "--password-stdin")
	login.Stdin = strings.NewReader(password + "\n")
	if out, err := login.CombinedOutput(); err != nil {
		t.Fatalf("registry login: %v\n%s", err, out)
	}
	c.waitFor("a task running on every node", 180*time.Second, func() bool {
		nodes := map[string]bool{}
		for _, x := range c.tasks("app") {
			if x.DesiredState == api.TaskRunning && x.Status.State == api.TaskRunning {
				nodes[x.NodeID] = true
			}
		}
		return len(nodes) == 3
	})

	// No file of any node, nor any log, holds the password.
	for _, root := range append([]string{c.logs}, c.dirs...) {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil // sockets, fifos, files gone meanwhile
			}
			b, err := os.ReadFile(p)
			if err == nil && bytes.Contains(b, []byte(password)) {
				t.Errorf("the registry password is in %s", p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
