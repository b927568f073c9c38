package gitsource

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
)

// endpoint is what the transport needs: the URL without credentials, the
// auth method and the secrets to scrub from errors.
type endpoint struct {
	url      string // credentials removed
	display  string // for messages
	auth     transport.AuthMethod
	secrets  []string
	kind     transportKind
	insecure bool
	caBundle []byte
}

// newEndpoint builds the transport settings of a validated Config.
func newEndpoint(c *Config) (*endpoint, error) {
	kind, _ := c.kind()
	ep := &endpoint{url: c.URL, kind: kind, insecure: c.InsecureSkipTLS, caBundle: c.CABundle}
	ep.secrets = c.secretsWithURL()
	ep.display = RedactURL(c.URL)
	switch kind {
	case kindHTTP:
		u, err := url.Parse(c.URL)
		if err != nil {
			return nil, fmt.Errorf("url %s: invalid", ep.display)
		}
		user, pass := c.Auth.Username, c.Auth.Password
		if c.Auth.Token != "" {
			pass = c.Auth.Token
			if user == "" {
				user = "git"
			}
		}
		if u.User != nil {
			user = u.User.Username()
			if p, ok := u.User.Password(); ok {
				pass = p
			} else if pass == "" {
				// https://TOKEN@host/… : the user name is the token.
				pass, user = user, "git"
			}
			u.User = nil
			ep.url = u.String()
			ep.display = ep.url
		}
		if pass != "" {
			ep.auth = &githttp.BasicAuth{Username: user, Password: pass}
		}
	case kindSSH:
		user := c.Auth.SSHUser
		if user == "" {
			user = sshURLUser(c.URL)
		}
		if user == "" {
			user = "git"
		}
		signer, err := parseSigner(c.Auth.SSHKey, c.Auth.SSHKeyPassphrase)
		if err != nil {
			return nil, fmt.Errorf("ssh key: %w", err)
		}
		pk := &gitssh.PublicKeys{User: user, Signer: signer}
		if c.Auth.InsecureIgnoreHostKey {
			pk.HostKeyCallback = ssh.InsecureIgnoreHostKey() //nolint:gosec // explicit opt-in
		} else {
			db, err := knownHostsDB(c.Auth.KnownHosts)
			if err != nil {
				return nil, fmt.Errorf("known_hosts: %w", err)
			}
			pk.HostKeyCallback = db.HostKeyCallback()
			pk.HostKeyAlgorithms = db.HostKeyAlgorithms(sshHostPort(c.URL))
		}
		ep.auth = pk
	case kindFile:
		ep.url = c.LocalPath()
		ep.display = ep.url
	}
	return ep, nil
}

// knownHostsDB loads known_hosts content. The skeema/knownhosts reader
// takes files only, so the content goes through a temporary file that is
// removed at once.
func knownHostsDB(data []byte) (*knownhosts.HostKeyDB, error) {
	f, err := os.CreateTemp("", "gitorc-known-hosts-*")
	if err != nil {
		return nil, err
	}
	name := f.Name()
	defer os.Remove(name)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return knownhosts.NewDB(filepath.Clean(name))
}

// sshURLUser returns the user of ssh://user@host/… or user@host:path.
func sshURLUser(raw string) string {
	if strings.Contains(raw, "://") {
		if u, err := url.Parse(raw); err == nil && u.User != nil {
			return u.User.Username()
		}
		return ""
	}
	if i := strings.Index(raw, "@"); i >= 0 && i < strings.Index(raw, ":") {
		return raw[:i]
	}
	return ""
}

// sshHostPort returns host:port (default 22) of an ssh URL, as known_hosts
// matching wants it.
func sshHostPort(raw string) string {
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil {
			return raw
		}
		port := u.Port()
		if port == "" {
			port = "22"
		}
		return net.JoinHostPort(u.Hostname(), port)
	}
	host := raw[:strings.Index(raw, ":")]
	if i := strings.LastIndex(host, "@"); i >= 0 {
		host = host[i+1:]
	}
	return net.JoinHostPort(host, "22")
}

// secretsWithURL lists the credentials of the Auth and of the URL.
func (c *Config) secretsWithURL() []string {
	s := c.Auth.secrets()
	if strings.Contains(c.URL, "://") {
		if u, err := url.Parse(c.URL); err == nil && u.User != nil {
			if p, ok := u.User.Password(); ok && p != "" {
				s = append(s, p)
			} else if u.Scheme == "http" || u.Scheme == "https" {
				s = append(s, u.User.Username())
			}
		}
	}
	return s
}
