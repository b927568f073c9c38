package e2e

import (
	"bufio"
	"bytes"
	"context"
	"io/fs"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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

// gitorc stack deploy --wait prints each node's pull of an image it
// lacks, then that the stack rolled out. The registry is reached through
// a proxy that holds the image's layers until both nodes' pull lines are
// printed: a pull on loopback is over before anyone could look.
func TestStackDeployWaitShowsPulls_Root(t *testing.T) {
	c := hostsWithRegistry(t, 2)
	img, err := imagetest.Busybox(ocispec.ImageConfig{Cmd: []string{"sleep", "3600"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.reg.Push(context.Background(), img, "team/fresh", "1"); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	target, _ := url.Parse("http://" + c.reg.Addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	l, err := net.Listen("tcp", net.JoinHostPort(c.nw.Gateway.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
			<-release
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	proxy := l.Addr().String()
	startNodes(c, 2, []string{"--insecure-registry", proxy})
	ref := proxy + "/team/fresh:1"

	file := filepath.Join(t.TempDir(), "compose.yaml")
	if err := os.WriteFile(file, []byte("services:\n  web:\n    image: "+ref+"\n    deploy:\n      mode: global\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(c.bin, "--socket", c.socket, "stack", "deploy", "-c", file, "--wait", "--timeout", "3m", "app")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	nodes := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if name, msg, ok := strings.Cut(strings.TrimSpace(line), ": pulling "+ref+": "); ok && strings.Contains(msg, "blobs") {
			nodes[name] = true
			if len(nodes) == 2 {
				once.Do(func() { close(release) })
			}
		}
	}
	if err := cmd.Wait(); err != nil || len(nodes) != 2 || !strings.Contains(out.String(), "stack app rolled out") {
		t.Errorf("stack deploy --wait (%v) shows pulls on %d nodes, want 2:\n%s", err, len(nodes), out.String())
	}
}
