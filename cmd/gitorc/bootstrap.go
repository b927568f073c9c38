package main

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/secrets"
	"github.com/spf13/cobra"
)

// DefaultDataDir is where a node keeps everything.
const DefaultDataDir = "/var/lib/gitorc"

type bootstrapFlags struct {
	dataDir, listen, advertise, raftListen string
	noWorker                               bool
	insecure                               []string
	repo, branch, path                     string
	interval                               time.Duration
	// Webhooks (hooks.go): where this manager serves them, and the secret.
	webhookListen, webhookSecret, webhookSecretFile string
	// gitUsername and gitPasswordFile are the repository's https
	// credentials (a cluster key; never in the URL).
	gitUsername, gitPasswordFile string
	// tokenFile is join's --token-file ("-": standard input).
	tokenFile string
	// stdin is where "-" files are read from.
	stdin io.Reader
	// metricsListen is where the node serves GET /metrics (metrics.go).
	metricsListen string
	// uiListen is where the manager serves its status page (ui.go).
	uiListen string
	// net are the network plane's flags (network_flags.go).
	net netFlags
	// plan is the cluster's address plan (network_flags.go).
	plan planFlags
	// autolock seals managers' data keys by an unlock key (autolock.go).
	autolock bool
	// timing is fault detection: Raft's timeout, workers' liveness (faults.go).
	timing timingFlags
	// policy is the node's policy (policy_flags.go).
	policy policyFlags
}

func newBootstrapCmd() *cobra.Command {
	var f bootstrapFlags
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Create a new cluster with this host as its first manager (and worker)",
		Long: `Creates the cluster's root CA, this node's certificate, the Raft store and the
cluster's age identity (its public recipient is written to DATA-DIR/recipient.txt for
gitorc seal), then runs the node in the foreground. Restart it later with
gitorc daemon --data-dir DATA-DIR: everything is kept there.
` + nodeReportDoc,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := outputFormat(cmd, outText, outText, outJSON); err != nil {
				return err
			}
			f.stdin = cmd.InOrStdin()
			d, err := bootstrap(f)
			if err != nil {
				return err
			}
			if d.unlockKey != nil {
				if format, _ := outputFormat(cmd, outText, outText, outJSON); format == outJSON {
					d.reportUnlockKey = d.unlockKey.Encode()
				} else {
					printUnlockKey(cmd.OutOrStdout(), d.unlockKey.Encode())
				}
			}
			return runDaemon(cmd, d)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", DefaultDataDir, "where the node keeps its state")
	fl.StringVar(&f.listen, "listen", "0.0.0.0:4270", "address of the node's API (workers' sessions)")
	fl.StringVar(&f.advertise, "advertise", "", "address other nodes reach the API at (default: the listen address, or this host's first address)")
	fl.StringVar(&f.raftListen, "raft-listen", "", "address of the managers' Raft transport (default: the listen port + 1)")
	fl.BoolVar(&f.noWorker, "no-worker", false, "run no tasks on this node")
	fl.BoolVar(&f.autolock, "autolock", false, "lock managers that restart until they are given the unlock key printed now (gitorc unlock)")
	fl.StringArrayVar(&f.insecure, "insecure-registry", nil, "registry reached over plain HTTP (host:port), e.g. a loopback test registry")
	fl.StringVar(&f.repo, "repo", "", "Git repository the cluster follows: https or ssh URL, or a local path")
	fl.StringVar(&f.branch, "branch", "", "branch, tag or commit to follow (default: the repository's HEAD)")
	fl.StringVar(&f.path, "path", "", "sub-directory of the repository holding the stacks")
	fl.DurationVar(&f.interval, "interval", time.Minute, "how often to poll the repository")
	fl.StringVar(&f.webhookListen, "webhook-listen", "", "serve POST /hooks/{github,gitlab,gitea,generic} on this address, e.g. :4280 (plain HTTP: put a TLS proxy in front); default off")
	fl.StringVar(&f.metricsListen, "metrics-listen", "", metricsListenHelp)
	fl.StringVar(&f.uiListen, "ui-listen", "", uiListenHelp)
	f.net.add(fl)
	f.plan.add(fl)
	f.timing.add(fl)
	f.policy.add(fl)
	fl.StringVar(&f.webhookSecret, "webhook-secret", "", "the webhooks' shared secret (HMAC key, GitLab token); prefer --webhook-secret-file")
	fl.StringVar(&f.webhookSecretFile, "webhook-secret-file", "", "file holding the webhooks' shared secret (- for standard input)")
	fl.StringVar(&f.gitPasswordFile, "git-password-file", "", "file holding the repository's https password or access token (- for standard input); credentials never go in --repo")
	fl.StringVar(&f.gitUsername, "git-username", "", "the repository's https user name, with --git-password-file (default git)")
	addOutputFlag(cmd)
	return cmd
}

func newDaemonCmd() *cobra.Command {
	var dataDir, webhookListen, metricsListen, uiListen string
	var timing timingFlags
	var policy policyFlags
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run this node from its data dir (after bootstrap or join)",
		Long:  "Runs this node from its data dir (after bootstrap or join), in the foreground.\n" + nodeReportDoc,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := outputFormat(cmd, outText, outText, outJSON); err != nil {
				return err
			}
			st, err := loadState(dataDir)
			if err != nil {
				return err
			}
			p, err := loadPKI(dataDir)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("webhook-listen") {
				// Kept in the node's state: later restarts need no flag.
				if st.WebhookListen = webhookListen; webhookListen == "off" {
					st.WebhookListen = ""
				}
				if err := saveState(dataDir, st); err != nil {
					return err
				}
			}
			if cmd.Flags().Changed("metrics-listen") {
				if st.MetricsListen = metricsListen; metricsListen == metricsOff {
					st.MetricsListen = ""
				}
				if err := saveState(dataDir, st); err != nil {
					return err
				}
			}
			if changed, err := policy.update(cmd.Flags(), st); err != nil {
				return err
			} else if changed {
				if err := saveState(dataDir, st); err != nil {
					return err
				}
			}
			if cmd.Flags().Changed("ui-listen") {
				if st.UIListen = uiListen; uiListen == "off" {
					st.UIListen = ""
				}
				if err := saveState(dataDir, st); err != nil {
					return err
				}
			}
			if fl := cmd.Flags(); fl.Changed("raft-timeout") || fl.Changed("heartbeat-period") || fl.Changed("heartbeat-tolerance") {
				if err := timing.record(fl, st); err != nil {
					return err
				}
				if err := saveState(dataDir, st); err != nil {
					return err
				}
			}
			return runDaemon(cmd, &daemon{dir: dataDir, state: st, pki: p})
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", DefaultDataDir, "where the node keeps its state")
	cmd.Flags().StringVar(&webhookListen, "webhook-listen", "", "serve webhooks on this address from now on (\"off\": stop); kept in the data dir")
	cmd.Flags().StringVar(&metricsListen, "metrics-listen", "", "serve Prometheus metrics (GET /metrics) on this address from now on (\"off\": stop); kept in the data dir")
	cmd.Flags().StringVar(&uiListen, "ui-listen", "", "serve the read-only status page on this address from now on, on a manager (\"off\": stop); kept in the data dir")
	timing.add(cmd.Flags())
	policy.add(cmd.Flags()) // each given flag replaces the kept value ("none" empties a list)
	addOutputFlag(cmd)
	return cmd
}

// nodeReport is what bootstrap, join and daemon print with -o json, once,
// when the node first serves its control socket: who the node is and
// where it is reached. The addresses are a manager's; Recipient is the
// cluster's public age recipient (for gitorc seal), once the node has it.
type nodeReport struct {
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

// nodeReportDoc documents nodeReport in the commands' help.
const nodeReportDoc = `With -o json: once the node serves its control socket, {"node", "role", "worker",
"data_dir", "socket", "managers"}, "metrics_listen" when it serves metrics, and for a manager "listen", "advertise",
"raft_listen", "raft_advertise", "webhook_listen" and "recipient" ("unlock_key" from bootstrap --autolock), are printed on
standard output, once, while the node keeps running; the log stays on standard error.`

// report is the node as nodeReport shows it.
func (d *daemon) report() nodeReport {
	st := d.state
	dir, err := filepath.Abs(d.dir)
	if err != nil {
		dir = d.dir
	}
	r := nodeReport{Node: st.ID, Role: st.Role, Worker: st.Worker, DataDir: dir, Socket: socketFile(dir),
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

// runDaemon runs a node until SIGINT or SIGTERM; with -o json, it prints
// the node's report once the node is up.
func runDaemon(cmd *cobra.Command, d *daemon) error {
	if d.log == nil {
		d.log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if format, _ := outputFormat(cmd, outText, outText, outJSON); format == outJSON {
		w := cmd.OutOrStdout()
		d.up = func() {
			if err := writeJSON(w, d.report()); err != nil {
				d.log.Warn("print the node's report", "err", err)
			}
		}
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return d.run(ctx)
}

// bootstrap lays out a new cluster's first node in the data dir.
func bootstrap(f bootstrapFlags) (*daemon, error) {
	if _, err := os.Stat(stateFile(f.dataDir)); err == nil {
		return nil, fmt.Errorf("%s already holds a node: run gitorc daemon --data-dir %s", f.dataDir, f.dataDir)
	}
	if err := refuseURLCredentials("--repo", f.repo); err != nil {
		return nil, err
	}
	secret, err := bootstrapWebhookSecret(f)
	if err != nil {
		return nil, err
	}
	gitCreds, err := bootstrapGitCredentials(f)
	if err != nil {
		return nil, err
	}
	hostNets, err := hostPrefixes()
	if err != nil {
		return nil, err
	}
	plan, err := f.plan.plan(hostNets)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return nil, err
	}
	advertise, err := advertiseAddr(f.listen, f.advertise)
	if err != nil {
		return nil, err
	}
	raftListen, raftAdvertise, err := raftAddrs(f.listen, advertise, f.raftListen)
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
	dir := pkiDir(f.dataDir)
	for name, data := range map[string][]byte{caCertFile: root.CertPEM(), nodeCertFile: cert, nodeKeyFile: key} {
		if err := writeFileAtomic(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	var source *api.SourceSpec
	if f.repo != "" {
		url := f.repo
		if !strings.Contains(url, "://") && !strings.Contains(url, "@") {
			if url, err = filepath.Abs(url); err != nil {
				return nil, err
			}
		}
		source = &api.SourceSpec{URL: url, Ref: f.branch, Path: f.path, Interval: api.Duration(f.interval), Revert: "auto"}
	}
	st := &nodeState{ID: id, Source: source, Role: api.RoleManager, Listen: f.listen, Advertise: advertise,
		RaftListen: raftListen, RaftAdvertise: raftAdvertise, Managers: []string{advertise},
		Worker: !f.noWorker, Insecure: f.insecure, WebhookListen: f.webhookListen, MetricsListen: f.metricsListen, UIListen: f.uiListen, Network: &plan}
	if err := f.net.record(st); err != nil {
		return nil, err
	}
	if err := f.timing.record(nil, st); err != nil {
		return nil, err
	}
	if st.Policy, err = f.policy.policy(); err != nil {
		return nil, err
	}
	p, err := loadPKI(f.dataDir)
	if err != nil {
		return nil, err
	}
	d := &daemon{dir: f.dataDir, state: st, pki: p, first: true, newRoot: root, webhookSecret: secret, gitCredentials: gitCreds}
	if f.autolock {
		if d.unlockKey, err = store.NewUnlockKey(); err != nil {
			return nil, err
		}
	}
	// The state file goes last: a bootstrap cut short can simply be rerun.
	if err := saveState(f.dataDir, st); err != nil {
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

// bootstrapGitCredentials reads bootstrap's https credentials for the
// repository, kept in memory until the new cluster's store holds them.
func bootstrapGitCredentials(f bootstrapFlags) (api.SecretBytes, error) {
	if f.gitPasswordFile == "" {
		if f.gitUsername != "" {
			return nil, errors.New("--git-username: give --git-password-file with it")
		}
		return nil, nil
	}
	if f.repo == "" || !isHTTPURL(f.repo) {
		return nil, errors.New("--git-password-file: only for an https --repo")
	}
	pass, err := readSecretFile("--git-password-file", f.gitPasswordFile, f.stdin)
	if err != nil {
		return nil, err
	}
	return api.SecretBytes(encodeGitCredentials(&f.gitUsername, pass)), nil
}
