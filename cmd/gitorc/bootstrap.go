package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/node"
	"github.com/gitorc/gitorc/reconcile/gitsource"
	"github.com/spf13/cobra"
)

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
	// timing is fault detection: Raft's timeout, workers' liveness (timing_flags.go).
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
			b, err := f.bootstrap()
			if err != nil {
				return err
			}
			format, _ := outputFormat(cmd, outText, outText, outJSON)
			b.UnlockKeyInReport = format == outJSON
			n, err := node.New(cmd.Context(), node.Config{DataDir: f.dataDir, Bootstrap: b, Logger: nodeLogger(cmd), Up: printReport(cmd)})
			if err != nil {
				return err
			}
			if key := n.UnlockKey(); key != "" && format != outJSON {
				printUnlockKey(cmd.OutOrStdout(), key)
			}
			return runNode(cmd, n)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", node.DefaultDataDir, "where the node keeps its state")
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
			change := func(st *node.State) (bool, error) {
				changed := false
				fl := cmd.Flags()
				if fl.Changed("webhook-listen") {
					// Kept in the node's state: later restarts need no flag.
					if st.WebhookListen = webhookListen; webhookListen == "off" {
						st.WebhookListen = ""
					}
					changed = true
				}
				if fl.Changed("metrics-listen") {
					if st.MetricsListen = metricsListen; metricsListen == "off" {
						st.MetricsListen = ""
					}
					changed = true
				}
				if c, err := policy.update(fl, st); err != nil {
					return false, err
				} else if c {
					changed = true
				}
				if fl.Changed("ui-listen") {
					if st.UIListen = uiListen; uiListen == "off" {
						st.UIListen = ""
					}
					changed = true
				}
				if fl.Changed("raft-timeout") || fl.Changed("heartbeat-period") || fl.Changed("heartbeat-tolerance") {
					if err := timing.record(fl, st); err != nil {
						return false, err
					}
					changed = true
				}
				return changed, nil
			}
			n, err := node.New(cmd.Context(), node.Config{DataDir: dataDir, Change: change, Logger: nodeLogger(cmd), Up: printReport(cmd)})
			if err != nil {
				return err
			}
			return runNode(cmd, n)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", node.DefaultDataDir, "where the node keeps its state")
	cmd.Flags().StringVar(&webhookListen, "webhook-listen", "", "serve webhooks on this address from now on (\"off\": stop); kept in the data dir")
	cmd.Flags().StringVar(&metricsListen, "metrics-listen", "", "serve Prometheus metrics (GET /metrics) on this address from now on (\"off\": stop); kept in the data dir")
	cmd.Flags().StringVar(&uiListen, "ui-listen", "", "serve the read-only status page on this address from now on, on a manager (\"off\": stop); kept in the data dir")
	timing.add(cmd.Flags())
	policy.add(cmd.Flags()) // each given flag replaces the kept value ("none" empties a list)
	addOutputFlag(cmd)
	return cmd
}

// nodeReportDoc documents nodeReport in the commands' help.
const nodeReportDoc = `With -o json: once the node serves its control socket, {"node", "role", "worker",
"data_dir", "socket", "managers"}, "metrics_listen" when it serves metrics, and for a manager "listen", "advertise",
"raft_listen", "raft_advertise", "webhook_listen" and "recipient" ("unlock_key" from bootstrap --autolock), are printed on
standard output, once, while the node keeps running; the log stays on standard error.`

// nodeLogger is the node's log: standard error, info and above.
func nodeLogger(cmd *cobra.Command) *slog.Logger {
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// printReport, with -o json, prints the node's report once the node is
// up (nil otherwise).
func printReport(cmd *cobra.Command) func(node.Report) {
	if format, _ := outputFormat(cmd, outText, outText, outJSON); format != outJSON {
		return nil
	}
	w := cmd.OutOrStdout()
	return func(r node.Report) {
		if err := writeJSON(w, r); err != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "gitorc: print the node's report:", err)
		}
	}
}

// runNode runs a node until SIGINT or SIGTERM.
func runNode(cmd *cobra.Command, n *node.Node) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return n.Run(ctx)
}

// settings are the flags bootstrap and join share, as the node takes them.
func (f *bootstrapFlags) settings() (node.Settings, error) {
	s := node.Settings{Listen: f.listen, Advertise: f.advertise, RaftListen: f.raftListen, NoWorker: f.noWorker,
		InsecureRegistries: f.insecure, WebhookListen: f.webhookListen, MetricsListen: f.metricsListen, UIListen: f.uiListen}
	if err := f.net.record(&s); err != nil {
		return s, err
	}
	var st node.State
	if err := f.timing.record(nil, &st); err != nil {
		return s, err
	}
	if st.Timing != nil {
		s.Timing = *st.Timing
	}
	var err error
	s.Policy, err = f.policy.policy()
	return s, err
}

// bootstrap is what bootstrap's flags ask of the node.
func (f *bootstrapFlags) bootstrap() (*node.Bootstrap, error) {
	if err := gitsource.RefuseURLCredentials("--repo", f.repo); err != nil {
		return nil, err
	}
	s, err := f.settings()
	if err != nil {
		return nil, err
	}
	b := &node.Bootstrap{Settings: s, Autolock: f.autolock}
	if b.WebhookSecret, err = bootstrapWebhookSecret(*f); err != nil {
		return nil, err
	}
	if b.GitPassword, err = bootstrapGitCredentials(*f); err != nil {
		return nil, err
	}
	b.GitUsername = f.gitUsername
	hostNets, err := node.HostPrefixes()
	if err != nil {
		return nil, err
	}
	if b.Network, err = f.plan.plan(hostNets); err != nil {
		return nil, err
	}
	if f.repo != "" {
		b.Source = &api.SourceSpec{URL: f.repo, Ref: f.branch, Path: f.path, Interval: api.Duration(f.interval)}
	}
	return b, nil
}
