package gitsource

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func newKey(t *testing.T) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer, pem.EncodeToMemory(block)
}

// serveSSH runs a real ssh server on 127.0.0.1 that runs git-upload-pack
// on repositories under root for the one authorized key.
func serveSSH(t *testing.T, root string, authorized ssh.PublicKey) (addr string, hostKey ssh.Signer) {
	t.Helper()
	if _, err := exec.LookPath("git-upload-pack"); err != nil {
		t.Skip("git-upload-pack not installed")
	}
	hostKey, _ = newKey(t)
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if bytes.Equal(k.Marshal(), authorized.Marshal()) {
			return nil, nil
		}
		return nil, errors.New("key not authorized")
	}}
	cfg.AddHostKey(hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { serveSSHConn(c, cfg, root) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String(), hostKey
}

func serveSSHConn(c net.Conn, cfg *ssh.ServerConfig, root string) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		for req := range creqs {
			if req.Type != "exec" {
				_ = req.Reply(req.Type == "env", nil)
				continue
			}
			_ = req.Reply(true, nil)
			n := binary.BigEndian.Uint32(req.Payload)
			line := string(req.Payload[4 : 4+n])
			prog, arg, _ := strings.Cut(line, " ")
			status := uint32(1)
			if prog == "git-upload-pack" {
				cmd := exec.Command(prog, filepath.Join(root, strings.Trim(arg, "'\"")))
				cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
				if cmd.Run() == nil {
					status = 0
				}
			}
			_, _ = ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
			ch.Close()
			break
		}
	}
}

func TestSSH(t *testing.T) {
	up := newUpstream(t)
	c1 := up.commit("one", map[string]string{"compose.yaml": "x\n"})
	client, clientPEM := newKey(t)
	addr, hostKey := serveSSH(t, up.root, client.PublicKey())
	url := "ssh://git@" + addr + "/repo.git"
	known := []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, hostKey.PublicKey()) + "\n")
	otherHost, _ := newKey(t)
	wrongKnown := []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, otherHost.PublicKey()) + "\n")
	_, otherPEM := newKey(t)

	t.Run("key and known_hosts", func(t *testing.T) {
		s := newSource(t, Config{URL: url, Ref: "main", Auth: Auth{SSHKey: clientPEM, KnownHosts: known}})
		if rev := mustFetch(t, s); rev.Commit != c1 {
			t.Fatalf("commit = %s, want %s", rev.Commit, c1)
		}
	})
	t.Run("unauthorized key", func(t *testing.T) {
		s := newSource(t, Config{URL: url, Ref: "main", Auth: Auth{SSHKey: otherPEM, KnownHosts: known}})
		_, err := s.Fetch(context.Background())
		if !errors.Is(err, ErrAuth) || !strings.HasPrefix(err.Error(), "ls-remote "+url+": ") {
			t.Fatalf("err = %v, want ErrAuth naming %s", err, url)
		}
	})
	t.Run("host key mismatch", func(t *testing.T) {
		s := newSource(t, Config{URL: url, Ref: "main", Auth: Auth{SSHKey: clientPEM, KnownHosts: wrongKnown}})
		_, err := s.Fetch(context.Background())
		if err == nil || !strings.Contains(err.Error(), "knownhosts") {
			t.Fatalf("err = %v, want a known_hosts refusal", err)
		}
	})
}

func TestSSHConfig(t *testing.T) {
	_, keyPEM := newKey(t)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("hunter22"))
	if err != nil {
		t.Fatal(err)
	}
	encPEM := pem.EncodeToMemory(block)
	signer, _ := newKey(t)
	known := []byte("# comment\n" + knownhosts.Line([]string{"git.example.com"}, signer.PublicKey()) + "\n")
	dd := t.TempDir()

	for _, tc := range []struct {
		name    string
		url     string
		auth    Auth
		wantErr string // substring; "" means valid
	}{
		{"valid", "ssh://git@git.example.com/ops/stacks.git", Auth{SSHKey: keyPEM, KnownHosts: known}, ""},
		{"scp-like", "git@git.example.com:ops/stacks.git", Auth{SSHKey: keyPEM, KnownHosts: known}, ""},
		{"encrypted with passphrase", "git@git.example.com:ops/stacks.git", Auth{SSHKey: encPEM, SSHKeyPassphrase: "hunter22", KnownHosts: known}, ""},
		{"insecure host key", "git@git.example.com:ops/stacks.git", Auth{SSHKey: keyPEM, InsecureIgnoreHostKey: true}, ""},
		{"no key", "ssh://git@git.example.com/x.git", Auth{KnownHosts: known}, "needs an ssh private key"},
		{"no known_hosts", "ssh://git@git.example.com/x.git", Auth{SSHKey: keyPEM}, "needs known_hosts"},
		{"encrypted without passphrase", "ssh://git@git.example.com/x.git", Auth{SSHKey: encPEM, KnownHosts: known}, "key is encrypted and no passphrase was given"},
		{"wrong passphrase", "ssh://git@git.example.com/x.git", Auth{SSHKey: encPEM, SSHKeyPassphrase: "nope-nope", KnownHosts: known}, "ssh key"},
		{"garbage key", "ssh://git@git.example.com/x.git", Auth{SSHKey: []byte("not a key"), KnownHosts: known}, "ssh key"},
		{"bad known_hosts", "ssh://git@git.example.com/x.git", Auth{SSHKey: keyPEM, KnownHosts: []byte("# c\ngit.example.com ssh-ed25519 AAAA!!!\n")}, "known_hosts: line 2"},
		{"password over ssh", "ssh://git@git.example.com/x.git", Auth{SSHKey: keyPEM, KnownHosts: known, Password: "pw"}, "use an ssh key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{URL: tc.url, Ref: "main", DataDir: dd, Auth: tc.auth}
			err := cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				ep, err := newEndpoint(&cfg)
				if err != nil {
					t.Fatalf("newEndpoint = %v", err)
				}
				if ep.auth == nil || ep.auth.Name() != "ssh-public-keys" {
					t.Fatalf("auth = %v, want ssh public keys", ep.auth)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "hunter22") || strings.Contains(err.Error(), "nope-nope") {
				t.Fatalf("error leaks the passphrase: %v", err)
			}
		})
	}
	if got := sshHostPort("git@git.example.com:ops/x.git"); got != "git.example.com:22" {
		t.Errorf("sshHostPort scp = %s", got)
	}
	if got := sshHostPort("ssh://git@h:2222/x"); got != "h:2222" {
		t.Errorf("sshHostPort url = %s", got)
	}
}
