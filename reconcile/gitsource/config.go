package gitsource

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Config describes one Git source. Validate reports every problem a user
// can fix; New calls it.
type Config struct {
	// URL is https://host/repo.git (http:// is accepted for loopback and
	// test servers), ssh://[user@]host[:port]/path, scp-like
	// user@host:path, file:///abs/path or an absolute local path.
	// Credentials embedded in an http(s) URL are moved into Auth.
	URL string
	// Ref is a branch ("main"), a tag ("v1.2.0"), a full reference name
	// ("refs/heads/main", "refs/tags/v1"), an exact 40-hex commit, or
	// empty for the remote's HEAD. A short name is looked up as a branch
	// first, then as a tag.
	Ref string
	// Path is an optional sub-directory of the repository holding the
	// stacks; Materialize and ReadFile are relative to it.
	Path string
	// DataDir is where the bare clone lives (created if missing). One
	// Source owns it.
	DataDir string
	// Auth holds credentials. Its String and LogValue are redacted.
	Auth Auth
	// InsecureSkipTLS disables certificate verification for https.
	InsecureSkipTLS bool
	// CABundle is extra PEM roots for https.
	CABundle []byte
	// Logger receives fetch events; nil discards them.
	Logger *slog.Logger
	// Now is the clock for Status times; nil means time.Now.
	Now func() time.Time
	// MaxFileBytes caps each file Materialize writes and ReadFile
	// returns; 0 means DefaultMaxFileBytes.
	MaxFileBytes int64
	// MaxTreeBytes caps the total size of the files Materialize writes;
	// 0 means DefaultMaxTreeBytes.
	MaxTreeBytes int64
	// MaxTreeEntries caps the number of files, directories and symlinks
	// Materialize writes; 0 means DefaultMaxTreeEntries.
	MaxTreeEntries int
}

// Limits on a commit's tree (under the sub-path). A repository of stacks
// never meets them; one that does is refused before anything is written
// or read, from the sizes in the object headers.
const (
	// DefaultMaxFileBytes is the largest file a stack may read (a sealed
	// secret or a config file).
	DefaultMaxFileBytes = 4 << 20
	DefaultMaxTreeBytes = 64 << 20
	// DefaultMaxTreeEntries bounds the files and directories written.
	DefaultMaxTreeEntries = 100_000
)

func (c *Config) maxFile() int64 { return orDefault(c.MaxFileBytes, DefaultMaxFileBytes) }
func (c *Config) maxTree() int64 { return orDefault(c.MaxTreeBytes, DefaultMaxTreeBytes) }
func (c *Config) maxEntries() int {
	return int(orDefault(int64(c.MaxTreeEntries), DefaultMaxTreeEntries))
}

func orDefault(v, def int64) int64 {
	if v <= 0 {
		return def
	}
	return v
}

// Auth holds credentials for a Source. Set at most one of Password and
// Token (https), or SSHKey (ssh).
type Auth struct {
	// Username for https basic auth; with a Token it defaults to "git"
	// (GitHub, Gitea and GitLab accept any user name with a token).
	Username string
	Password string
	// Token is a personal or deploy access token, sent as the basic-auth
	// password.
	Token string
	// SSHKey is a PEM private key (OpenSSH or PKCS#8/#1).
	SSHKey []byte
	// SSHKeyPassphrase decrypts an encrypted SSHKey.
	SSHKeyPassphrase string
	// SSHUser overrides the ssh user (default: from the URL, else "git").
	SSHUser string
	// KnownHosts is the content of a known_hosts file that must list the
	// server's host key. Required for ssh unless InsecureIgnoreHostKey.
	KnownHosts []byte
	// InsecureIgnoreHostKey accepts any ssh host key (tests only).
	InsecureIgnoreHostKey bool
}

// String never shows secrets.
func (a Auth) String() string {
	switch {
	case len(a.SSHKey) > 0:
		return "ssh-key [redacted]"
	case a.Token != "":
		return "token [redacted]"
	case a.Password != "":
		return "basic " + a.Username + ":[redacted]"
	}
	return "none"
}

// LogValue never shows secrets.
func (a Auth) LogValue() slog.Value { return slog.StringValue(a.String()) }

// GoString keeps %#v from printing secrets.
func (a Auth) GoString() string { return "gitsource.Auth{" + a.String() + "}" }

// secrets lists the strings that must never appear in an error.
func (a Auth) secrets() []string {
	var s []string
	for _, v := range []string{a.Password, a.Token, a.SSHKeyPassphrase} {
		if v != "" {
			s = append(s, v)
		}
	}
	return s
}

// transportKind is how a URL is reached.
type transportKind int

const (
	kindHTTP transportKind = iota
	kindSSH
	kindFile
)

var (
	hexCommit = regexp.MustCompile(`^[0-9a-f]{40}$`)
	scpLike   = regexp.MustCompile(`^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+:[^/]`)
)

// kind classifies the URL; ok is false when it is none of the supported forms.
func (c *Config) kind() (transportKind, bool) {
	u := c.URL
	switch {
	case strings.HasPrefix(u, "https://"), strings.HasPrefix(u, "http://"):
		return kindHTTP, true
	case strings.HasPrefix(u, "ssh://"), strings.HasPrefix(u, "git+ssh://"):
		return kindSSH, true
	case strings.HasPrefix(u, "file://"), strings.HasPrefix(u, "/"):
		return kindFile, true
	case scpLike.MatchString(u) && !strings.Contains(u, "://"):
		return kindSSH, true
	}
	return 0, false
}

// IsLocal reports whether the source is a local path or file:// URL
// (the caller may watch it with fsnotify).
func (c *Config) IsLocal() bool { k, ok := c.kind(); return ok && k == kindFile }

// LocalPath returns the repository directory of a local source, or "".
func (c *Config) LocalPath() string {
	if !c.IsLocal() {
		return ""
	}
	if strings.HasPrefix(c.URL, "file://") {
		if u, err := url.Parse(c.URL); err == nil {
			return u.Path
		}
	}
	return c.URL
}

// IsCommit reports whether Ref is an exact commit.
func (c *Config) IsCommit() bool { return hexCommit.MatchString(c.Ref) }

// Validate reports what is wrong with the configuration, all at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	kind, ok := c.kind()
	switch {
	case c.URL == "":
		bad("url is empty")
	case !ok:
		bad("url %q: not https://, ssh://, user@host:path, file:// or an absolute path", RedactURL(c.URL))
	case kind == kindHTTP:
		u, err := url.Parse(c.URL)
		if err != nil {
			bad("url %s: %v", RedactURL(c.URL), redactString(err.Error(), c.secretsWithURL()))
		} else if u.Host == "" {
			bad("url %s: no host", RedactURL(c.URL))
		} else if u.User != nil && (c.Auth.Password != "" || c.Auth.Token != "") {
			bad("url %s: credentials both in the url and in auth", RedactURL(c.URL))
		}
		if len(c.Auth.SSHKey) > 0 {
			bad("auth: an ssh key needs an ssh url, not %s", RedactURL(c.URL))
		}
	case kind == kindSSH:
		if c.Auth.Password != "" || c.Auth.Token != "" {
			bad("auth: password or token given for ssh url %s (use an ssh key)", RedactURL(c.URL))
		}
		if len(c.Auth.SSHKey) == 0 {
			bad("auth: ssh url %s needs an ssh private key", RedactURL(c.URL))
		}
		if len(c.Auth.KnownHosts) == 0 && !c.Auth.InsecureIgnoreHostKey {
			bad("auth: ssh url %s needs known_hosts (or insecure-ignore-host-key)", RedactURL(c.URL))
		}
	case kind == kindFile:
		if u, err := url.Parse(c.URL); strings.HasPrefix(c.URL, "file://") && (err != nil || (u.Host != "" && u.Host != "localhost")) {
			bad("url %s: local path must be absolute (file:///path)", c.URL)
		} else if p := c.LocalPath(); !filepath.IsAbs(p) {
			bad("url %s: local path must be absolute", c.URL)
		}
		if !isZeroAuth(c.Auth) {
			bad("auth: credentials given for local path %s", c.URL)
		}
	}
	if c.Auth.Password != "" && c.Auth.Token != "" {
		bad("auth: set password or token, not both")
	}
	if len(c.Auth.SSHKey) > 0 {
		if _, err := parseSigner(c.Auth.SSHKey, c.Auth.SSHKeyPassphrase); err != nil {
			bad("auth: ssh key: %v", err)
		}
	}
	if len(c.Auth.KnownHosts) > 0 {
		if err := checkKnownHosts(c.Auth.KnownHosts); err != nil {
			bad("auth: known_hosts: %v", err)
		}
	}
	if err := validateRef(c.Ref); err != nil {
		bad("ref %q: %v", c.Ref, err)
	}
	if _, err := cleanSubPath(c.Path); err != nil {
		bad("path %q: %v", c.Path, err)
	}
	if c.DataDir == "" {
		bad("data dir is empty")
	} else if !filepath.IsAbs(c.DataDir) {
		bad("data dir %s: must be absolute", c.DataDir)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}

// isZeroAuth reports whether no credential is set (slices make Auth
// incomparable with ==, so compare the fields).
func isZeroAuth(a Auth) bool {
	return a.Username == "" && a.Password == "" && a.Token == "" && len(a.SSHKey) == 0 &&
		a.SSHKeyPassphrase == "" && a.SSHUser == "" && len(a.KnownHosts) == 0
}

func validateRef(ref string) error {
	if ref == "" || hexCommit.MatchString(ref) {
		return nil
	}
	if strings.ContainsAny(ref, " ~^:?*[\\\t\n") || strings.Contains(ref, "..") ||
		strings.Contains(ref, "@{") || strings.Contains(ref, "//") ||
		strings.HasPrefix(ref, "/") || strings.HasSuffix(ref, "/") ||
		strings.HasSuffix(ref, ".lock") || strings.HasSuffix(ref, ".") || strings.HasPrefix(ref, "-") {
		return errors.New("not a valid branch, tag or commit")
	}
	for _, r := range ref {
		if r < 0x20 || r == 0x7f {
			return errors.New("not a valid branch, tag or commit")
		}
	}
	if strings.HasPrefix(ref, "refs/") && !strings.HasPrefix(ref, "refs/heads/") && !strings.HasPrefix(ref, "refs/tags/") {
		return errors.New("only refs/heads/… and refs/tags/… are followed")
	}
	return nil
}

// cleanSubPath normalises a sub-path to "" (root) or "a/b".
func cleanSubPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if strings.HasPrefix(p, "/") || strings.Contains(p, "\\") {
		return "", errors.New("must be relative to the repository root")
	}
	c := path.Clean(p)
	if c == "." {
		return "", nil
	}
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", errors.New("must stay inside the repository")
	}
	for _, seg := range strings.Split(c, "/") {
		if seg == ".git" {
			return "", errors.New("must not name .git")
		}
	}
	return c, nil
}

func parseSigner(key []byte, passphrase string) (ssh.Signer, error) {
	if passphrase != "" {
		s, err := ssh.ParsePrivateKeyWithPassphrase(key, []byte(passphrase))
		if err != nil {
			return nil, errors.New(redactString(err.Error(), []string{passphrase}))
		}
		return s, nil
	}
	s, err := ssh.ParsePrivateKey(key)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, errors.New("key is encrypted and no passphrase was given")
	}
	return s, err
}

// checkKnownHosts parses every non-comment line of a known_hosts file.
func checkKnownHosts(data []byte) error {
	n := 0
	for i, line := range bytes.Split(data, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) == 0 || t[0] == '#' {
			continue
		}
		if _, _, _, _, _, err := ssh.ParseKnownHosts(t); err != nil {
			return fmt.Errorf("line %d: %w", i+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("no host keys")
	}
	return nil
}
