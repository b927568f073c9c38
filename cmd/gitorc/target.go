package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/spf13/cobra"
)

// Where the CLI's commands go. In order: --host, $GITORC_HOST, --socket,
// $GITORC_SOCKET, the current context (gitorc context use), the local
// socket. A host is a manager's API port, reached over mutual TLS with
// the admin certificate of a TLS directory (--tls-dir, $GITORC_TLS_DIR,
// or the current context's).

// defaultAPIPort is the manager API port a host without one gets.
const defaultAPIPort = "4270"

// The files of a TLS directory, as gitorc admin-cert issue writes them.
const (
	tlsCAFile   = "ca.pem"
	tlsCertFile = "cert.pem"
	tlsKeyFile  = "key.pem"
)

// target is what a command talks to: a socket, or a host and TLS dir.
type target struct {
	socket       string
	host, tlsDir string
	// from says which setting chose the target, for messages.
	from string
}

// resolveTarget picks the command's target by the order above.
func resolveTarget(cmd *cobra.Command) (target, error) {
	flag := func(name string) string {
		if f := cmd.Flag(name); f != nil {
			return f.Value.String()
		}
		return ""
	}
	var host, from, ctxTLS string
	switch {
	case flag("host") != "":
		host, from = flag("host"), "--host"
	case os.Getenv("GITORC_HOST") != "":
		host, from = os.Getenv("GITORC_HOST"), "GITORC_HOST"
	case flag("socket") != "":
		return target{socket: flag("socket"), from: "--socket"}, nil
	case os.Getenv("GITORC_SOCKET") != "":
		return target{socket: os.Getenv("GITORC_SOCKET"), from: "GITORC_SOCKET"}, nil
	default:
		cfg, err := loadContexts()
		if err != nil {
			return target{}, err
		}
		cur := cfg.find(cfg.Current)
		if cur == nil {
			return target{socket: defaultSocket, from: "default"}, nil
		}
		host, from, ctxTLS = cur.Host, "context "+cur.Name, cur.TLSDir
	}
	if host == "" {
		return target{socket: defaultSocket, from: from}, nil
	}
	addr, socket, err := parseHosts(host)
	if err != nil {
		return target{}, fmt.Errorf("%s: %w", from, err)
	}
	if socket != "" {
		return target{socket: socket, from: from}, nil
	}
	t := target{host: addr, from: from}
	switch {
	case flag("tls-dir") != "":
		t.tlsDir = flag("tls-dir")
	case os.Getenv("GITORC_TLS_DIR") != "":
		t.tlsDir = os.Getenv("GITORC_TLS_DIR")
	case ctxTLS != "":
		t.tlsDir = ctxTLS
	default:
		if cfg, err := loadContexts(); err == nil {
			if cur := cfg.find(cfg.Current); cur != nil {
				t.tlsDir = cur.TLSDir
			}
		}
	}
	if t.tlsDir == "" {
		return target{}, fmt.Errorf("%s (%s) needs an admin certificate: give --tls-dir DIR or GITORC_TLS_DIR "+
			"(a directory with %s, %s and %s, as gitorc admin-cert issue --out DIR writes it)", addr, from, tlsCAFile, tlsCertFile, tlsKeyFile)
	}
	return t, nil
}

// parseHosts is parseHost for a comma-separated list of managers
// (tcp://A:PORT,tcp://B:PORT or A,B): their addresses, comma-separated,
// which the client calls in turn when one cannot be reached. A socket
// comes alone.
func parseHosts(h string) (addrs, socket string, err error) {
	if !strings.Contains(h, ",") {
		return parseHost(h)
	}
	var out []string
	for _, one := range strings.Split(h, ",") {
		addr, socket, err := parseHost(strings.TrimSpace(one))
		if err != nil {
			return "", "", err
		}
		if socket != "" {
			return "", "", fmt.Errorf("host %q: a unix socket cannot be one of a list of managers", one)
		}
		out = append(out, addr)
	}
	return strings.Join(out, ","), "", nil
}

// parseHost reads tcp://ADDR[:PORT] (or ADDR[:PORT]) into an address, or
// unix:///PATH into a socket.
func parseHost(h string) (addr, socket string, err error) {
	switch {
	case strings.HasPrefix(h, "unix://"):
		if p := strings.TrimPrefix(h, "unix://"); p != "" {
			return "", p, nil
		}
		return "", "", fmt.Errorf("host %q: no socket path", h)
	case strings.HasPrefix(h, "tcp://"):
		h = strings.TrimPrefix(h, "tcp://")
	case strings.Contains(h, "://"):
		return "", "", fmt.Errorf("host %q: want tcp://ADDR:PORT or unix:///PATH", h)
	}
	h = strings.TrimSuffix(h, "/")
	if h == "" || strings.ContainsAny(h, "/?#@ ") {
		return "", "", fmt.Errorf("host %q: want tcp://ADDR:PORT or unix:///PATH", h)
	}
	if _, _, err := net.SplitHostPort(h); err != nil {
		h = net.JoinHostPort(strings.Trim(h, "[]"), defaultAPIPort)
	}
	return h, "", nil
}

// tlsFiles reads and checks a TLS directory: the cluster's CA and an
// admin certificate with its key, valid now.
func tlsFiles(dir string) (*x509.Certificate, tlsPair, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("TLS directory %s: %w", dir, err)
		}
		return b, nil
	}
	caPEM, err := read(tlsCAFile)
	if err != nil {
		return nil, tlsPair{}, err
	}
	certPEM, err := read(tlsCertFile)
	if err != nil {
		return nil, tlsPair{}, err
	}
	keyPEM, err := read(tlsKeyFile)
	if err != nil {
		return nil, tlsPair{}, err
	}
	root, err := ca.ParseCertificatePEM(caPEM)
	if err != nil {
		return nil, tlsPair{}, fmt.Errorf("%s: %w", filepath.Join(dir, tlsCAFile), err)
	}
	pair, id, err := ca.LoadAdminCert(certPEM, keyPEM)
	if err != nil {
		return nil, tlsPair{}, fmt.Errorf("TLS directory %s: %w", dir, err)
	}
	if n := time.Now(); n.After(id.NotAfter) {
		return nil, tlsPair{}, fmt.Errorf("TLS directory %s: the admin certificate of %s (serial %s) expired at %s: "+
			"issue a new one with gitorc admin-cert issue", dir, id.Name, id.Serial, id.NotAfter.UTC().Format(time.RFC3339))
	}
	return root, tlsPair{pair: pair, id: id}, nil
}

// tlsPair is an admin certificate with its key, and who it names.
type tlsPair struct {
	pair tls.Certificate
	id   ca.AdminIdentity
}

// remoteTLS is the TLS configuration for a manager's API with the admin
// certificate of a TLS directory.
func remoteTLS(dir string) (*tls.Config, error) {
	root, p, err := tlsFiles(dir)
	if err != nil {
		return nil, err
	}
	return ca.AdminClientConfig(root, p.pair, nil)
}

// isRemote reports whether the command's target is a manager's API port.
func isRemote(cmd *cobra.Command) bool {
	t, err := resolveTarget(cmd)
	return err == nil && t.host != ""
}

// errNodeLocal is returned by commands that only the node itself runs.
var errNodeLocal = errors.New("this command runs on the node itself, over its control socket: not with --host, GITORC_HOST or a remote context")
