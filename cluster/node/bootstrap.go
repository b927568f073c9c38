package node

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/secrets"
)

// DefaultDataDir is where a node keeps everything.
const DefaultDataDir = "/var/lib/gitorc"

// Report is what bootstrap, join and daemon print with -o json, once,
// when the node first serves its control socket: who the node is and
// where it is reached. The addresses are a manager's; Recipient is the
// cluster's public age recipient (for gitorc seal), once the node has it.
type Report struct {
	Node          string       `json:"node"`
	Role          api.NodeRole `json:"role"`
	Worker        bool         `json:"worker"` // it runs tasks
	DataDir       string       `json:"data_dir"`
	Socket        string       `json:"socket"` // the control socket
	Listen        string       `json:"listen,omitempty"`
	Advertise     string       `json:"advertise,omitempty"`
	RaftListen    string       `json:"raft_listen,omitempty"`
	RaftAdvertise string       `json:"raft_advertise,omitempty"`
	WebhookListen string       `json:"webhook_listen,omitempty"`
	MetricsListen string       `json:"metrics_listen,omitempty"`
	Managers      []string     `json:"managers"` // the managers it knows
	Recipient     string       `json:"recipient,omitempty"`
	// UnlockKey is bootstrap --autolock's key, printed this once.
	UnlockKey string `json:"unlock_key,omitempty"`
}

// report is the node as Report shows it.
func (d *daemon) report() Report {
	st := d.state
	dir, err := filepath.Abs(d.dir)
	if err != nil {
		dir = d.dir
	}
	r := Report{Node: st.ID, Role: st.Role, Worker: st.Worker, DataDir: dir, Socket: socketFile(dir),
		Listen: st.Listen, Advertise: st.Advertise, RaftListen: st.RaftListen, RaftAdvertise: st.RaftAdvertise,
		WebhookListen: st.WebhookListen, MetricsListen: st.MetricsListen, Managers: append([]string{}, st.Managers...),
		UnlockKey: d.reportUnlockKey}
	if st.Role == api.RoleManager {
		if f, err := os.Open(recipientPath(dir)); err == nil {
			r.Recipient, _ = secrets.ReadRecipientFile(f)
			f.Close()
		}
	}
	return r
}

// bootstrap lays out a new cluster's first node in the data dir.
func bootstrap(dataDir string, b *Bootstrap) (*daemon, error) {
	if _, err := os.Stat(stateFile(dataDir)); err == nil {
		return nil, fmt.Errorf("%s already holds a node: run gitorc daemon --data-dir %s", dataDir, dataDir)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	advertise, err := advertiseAddr(b.Listen, b.Advertise)
	if err != nil {
		return nil, err
	}
	raftListen, raftAdvertise, err := raftAddrs(b.Listen, advertise, b.RaftListen)
	if err != nil {
		return nil, err
	}
	id, err := newNodeID()
	if err != nil {
		return nil, err
	}
	root, err := ca.NewRootCA(ca.DefaultConfig())
	if err != nil {
		return nil, err
	}
	csr, key, err := ca.NewCSR(id)
	if err != nil {
		return nil, err
	}
	cert, err := root.Issue(csr, id, api.RoleManager)
	if err != nil {
		return nil, err
	}
	dir := pkiDir(dataDir)
	for name, data := range map[string][]byte{caCertFile: root.CertPEM(), nodeCertFile: cert, nodeKeyFile: key} {
		if err := writeFileAtomic(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	var source *api.SourceSpec
	if b.Source != nil {
		src := *b.Source
		if !strings.Contains(src.URL, "://") && !strings.Contains(src.URL, "@") {
			if src.URL, err = filepath.Abs(src.URL); err != nil {
				return nil, err
			}
		}
		if src.Revert == "" {
			src.Revert = "auto"
		}
		source = &src
	}
	plan := b.Network
	st := &State{ID: id, Source: source, Role: api.RoleManager, Listen: b.Listen, Advertise: advertise,
		RaftListen: raftListen, RaftAdvertise: raftAdvertise, Managers: []string{advertise},
		Worker: !b.NoWorker, Insecure: b.InsecureRegistries, WebhookListen: b.WebhookListen, MetricsListen: b.MetricsListen,
		UIListen: b.UIListen, Network: &plan}
	b.Settings.keep(st)
	p, err := loadPKI(dataDir)
	if err != nil {
		return nil, err
	}
	var creds api.SecretBytes
	if b.GitPassword != nil {
		creds = api.SecretBytes(encodeGitCredentials(&b.GitUsername, string(b.GitPassword.Reveal())))
	}
	d := &daemon{dir: dataDir, state: st, pki: p, first: true, newRoot: root, webhookSecret: b.WebhookSecret, gitCredentials: creds}
	if b.Autolock {
		if d.unlockKey, err = store.NewUnlockKey(); err != nil {
			return nil, err
		}
		if b.UnlockKeyInReport {
			d.reportUnlockKey = d.unlockKey.Encode()
		}
	}
	// The state file goes last: a bootstrap cut short can simply be rerun.
	if err := saveState(dataDir, st); err != nil {
		return nil, err
	}
	return d, nil
}

func newNodeID() (string, error) {
	b := make([]byte, 15)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return strings.ToLower(base32.StdEncoding.EncodeToString(b)), nil
}

// advertiseAddr is the address others reach a listen address at.
func advertiseAddr(listen, advertise string) (string, error) {
	if advertise != "" {
		return advertise, nil
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("--listen %s: %w", listen, err)
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		return listen, nil
	}
	return net.JoinHostPort(firstAddress(), port), nil
}

// firstAddress is this host's first non-loopback IPv4 address, or
// 127.0.0.1 on a host with none.
func firstAddress() string {
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// raftAddrs derives the Raft listen and advertise addresses: by default
// the API's port + 1.
func raftAddrs(listen, advertise, raftListen string) (string, string, error) {
	bump := func(addr string) (string, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return "", err
		}
		n, err := strconv.Atoi(port)
		if err != nil || n <= 0 || n >= 65535 {
			return "", errors.New("bad port in " + addr)
		}
		return net.JoinHostPort(host, strconv.Itoa(n+1)), nil
	}
	adv, err := bump(advertise)
	if err != nil {
		return "", "", err
	}
	if raftListen != "" {
		_, port, err := net.SplitHostPort(raftListen)
		if err != nil {
			return "", "", err
		}
		host, _, _ := net.SplitHostPort(advertise)
		return raftListen, net.JoinHostPort(host, port), nil
	}
	l, err := bump(listen)
	return l, adv, err
}

// privateDataDir makes the data dir, and every directory of its Git
// clones, readable by root only: a data dir that existed before keeps
// its mode otherwise, and the clones hold the stacks (and whatever the
// repository holds).
func privateDataDir(dir string) error {
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	gitops := filepath.Join(dir, "gitops")
	err := filepath.WalkDir(gitops, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o077 != 0 {
			return os.Chmod(p, info.Mode().Perm()&0o700)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	return nil
}
