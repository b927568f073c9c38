package imagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/crypto/bcrypt"
)

// RegistryPath is where Debian's docker-registry installs its binary.
const RegistryPath = "/usr/bin/docker-registry"

// Registry is a docker-registry process serving plain HTTP on 127.0.0.1.
type Registry struct {
	// Addr is "127.0.0.1:PORT", the registry host in image references.
	Addr string
	cmd  *exec.Cmd
	done chan struct{}
	// user and password, when set, are what the registry asks for
	// (htpasswd); Push sends them.
	user, password string
}

// StartRegistry starts a registry with its config and storage under dir
// and waits (up to timeout) until it answers.
func StartRegistry(ctx context.Context, dir string, timeout time.Duration) (*Registry, error) {
	return StartRegistryOn(ctx, dir, "127.0.0.1", timeout)
}

// StartRegistryOn is StartRegistry listening on host (an address of this
// machine, such as the bridge of an e2e network, so that hosts in network
// namespaces can pull from it).
func StartRegistryOn(ctx context.Context, dir, host string, timeout time.Duration) (*Registry, error) {
	return StartAuthRegistryOn(ctx, dir, host, "", "", timeout)
}

// StartAuthRegistryOn is StartRegistryOn for a registry that serves only
// clients that give user and password (htpasswd, basic auth), as a
// private registry does; empty user: no authentication.
func StartAuthRegistryOn(ctx context.Context, dir, host, user, password string, timeout time.Duration) (*Registry, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		r, err := startRegistry(ctx, dir, host, user, password, timeout)
		if err == nil {
			return r, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startRegistry(ctx context.Context, dir, host, user, password string, timeout time.Duration) (*Registry, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	authCfg := ""
	if user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			return nil, err
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
			return nil, err
		}
		authCfg = fmt.Sprintf("auth:\n  htpasswd:\n    realm: imagetest\n    path: %s\n", htpasswd)
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: imagetest
%s`, filepath.Join(dir, "storage"), addr, authCfg)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(RegistryPath, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	r := &Registry{Addr: addr, cmd: cmd, done: make(chan struct{}), user: user, password: password}
	go func() {
		_ = cmd.Wait()
		close(r.done)
	}()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			// A registry that asks for credentials answers, too.
			if resp.StatusCode == http.StatusOK || (user != "" && resp.StatusCode == http.StatusUnauthorized) {
				return r, nil
			}
		}
		if time.Now().After(deadline) {
			r.Stop()
			return nil, fmt.Errorf("registry on %s not ready after %s", addr, timeout)
		}
		select {
		case <-r.done:
			log, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			return nil, fmt.Errorf("registry exited: %s", strings.TrimSpace(string(log)))
		case <-ctx.Done():
			r.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Stop ends the registry process and waits for it.
func (r *Registry) Stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// Push uploads the image as repo:tag with the distribution API and
// returns the reference "ADDR/repo:tag".
func (r *Registry) Push(ctx context.Context, img *Image, repo, tag string) (string, error) {
	blobs := []struct {
		d    ocispec.Descriptor
		data []byte
	}{{img.ConfigDesc, img.Config}}
	for i, l := range img.Layers {
		blobs = append(blobs, struct {
			d    ocispec.Descriptor
			data []byte
		}{img.LayerDescs[i], l})
	}
	base := "http://" + r.Addr + "/v2/" + repo
	for _, b := range blobs {
		if err := r.pushBlob(ctx, base, b.d.Digest, b.data); err != nil {
			return "", fmt.Errorf("push %s: %w", repo, err)
		}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, base+"/manifests/"+tag, bytes.NewReader(img.Manifest))
	req.Header.Set("Content-Type", ocispec.MediaTypeImageManifest)
	if err := r.do(req, http.StatusCreated); err != nil {
		return "", fmt.Errorf("push %s manifest: %w", repo, err)
	}
	return r.Addr + "/" + repo + ":" + tag, nil
}

func (r *Registry) pushBlob(ctx context.Context, base string, d digest.Digest, data []byte) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodHead, base+"/blobs/"+d.String(), nil)
	if r.do(req, http.StatusOK) == nil {
		return nil
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, base+"/blobs/uploads/", nil)
	r.authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start upload: %s", resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	u, _ := url.Parse(base)
	loc = u.ResolveReference(loc)
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	req, _ = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.ContentLength = int64(len(data))
	return r.do(req, http.StatusCreated)
}

// authorize adds the registry's credentials to a request, if it has any.
func (r *Registry) authorize(req *http.Request) {
	if r.user != "" {
		req.SetBasicAuth(r.user, r.password)
	}
}

func (r *Registry) do(req *http.Request, want int) error {
	r.authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return errors.New(resp.Status + ": " + strings.TrimSpace(string(body)))
	}
	return nil
}

// BusyboxRef is the repository and tag of the image that the demo, the
// daemon tests and the e2e clusters run: gitorc/busybox:1.
const (
	BusyboxRepo = "gitorc/busybox"
	BusyboxTag  = "1"
)

// StartBusyboxRegistry starts a registry on host (as StartRegistryOn)
// that holds Busybox as gitorc/busybox:1 with cmd as its default command.
func StartBusyboxRegistry(ctx context.Context, dir, host string, cmd []string, timeout time.Duration) (*Registry, error) {
	reg, err := StartRegistryOn(ctx, dir, host, timeout)
	if err != nil {
		return nil, err
	}
	img, err := Busybox(ocispec.ImageConfig{Cmd: cmd})
	if err == nil {
		_, err = reg.Push(ctx, img, BusyboxRepo, BusyboxTag)
	}
	if err != nil {
		reg.Stop()
		return nil, err
	}
	return reg, nil
}
