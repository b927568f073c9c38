package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/node"
	"github.com/spf13/cobra"
)

func newJoinCmd() *cobra.Command {
	var f bootstrapFlags
	var token string
	cmd := &cobra.Command{
		Use:   "join --token-file FILE|--token TOKEN MANAGER-ADDR",
		Short: "Join an existing cluster as a worker, or as a manager with a manager token",
		Long: `Asks the manager for this node's certificate with a join token (gitorc token
worker|manager on a manager). The connection trusts only the CA whose digest the token
carries. A manager token makes this node a manager too: it receives the cluster's data
key, copies the store as a Raft learner and becomes a voter once it has caught up.
Then runs the node in the foreground; restart it later with gitorc daemon --data-dir.
Prefer --token-file (- reads standard input): a --token shows in the process list.
` + nodeReportDoc,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := outputFormat(cmd, outText, outText, outJSON); err != nil {
				return err
			}
			tok, err := joinToken(token, f.tokenFile, cmd.InOrStdin())
			if err != nil {
				return err
			}
			s, err := f.settings()
			if err != nil {
				return err
			}
			n, err := node.New(cmd.Context(), node.Config{DataDir: f.dataDir, Join: &node.Join{Settings: s, Token: tok, Manager: args[0]},
				Logger: nodeLogger(cmd), Up: printReport(cmd)})
			if err != nil {
				return err
			}
			return runNode(cmd, n)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&token, "token", "", "join token (GTRC-1-…); prefer --token-file, a --token shows in the process list")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the join token (- for standard input)")
	fl.StringVar(&f.dataDir, "data-dir", node.DefaultDataDir, "where the node keeps its state")
	fl.StringArrayVar(&f.insecure, "insecure-registry", nil, "registry reached over plain HTTP (host:port)")
	fl.StringVar(&f.listen, "listen", "0.0.0.0:4270", "a manager's API address (manager token only)")
	fl.StringVar(&f.advertise, "advertise", "", "address other nodes reach a manager's API at (default: the listen address, or this host's first address)")
	fl.StringVar(&f.raftListen, "raft-listen", "", "a manager's Raft address (default: the listen port + 1)")
	fl.BoolVar(&f.noWorker, "no-worker", false, "a manager that runs no tasks")
	fl.StringVar(&f.webhookListen, "webhook-listen", "", "a manager serves POST /hooks/{github,gitlab,gitea,generic} on this address (plain HTTP: put a TLS proxy in front); default off")
	fl.StringVar(&f.metricsListen, "metrics-listen", "", metricsListenHelp)
	f.net.add(fl)
	f.timing.add(fl)
	f.policy.add(fl)
	addOutputFlag(cmd)
	return cmd
}

// joinToken is the join token of --token or --token-file (one of them).
func joinToken(token, file string, stdin io.Reader) (string, error) {
	switch {
	case token != "" && file != "":
		return "", errors.New("--token and --token-file: give one")
	case file != "":
		return readSecretFile("--token-file", file, stdin)
	case token == "":
		return "", errors.New("give the join token with --token-file FILE (- for standard input) or --token")
	}
	return strings.TrimSpace(token), nil
}

func newTokenCmd() *cobra.Command {
	var rotate bool
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "token worker|manager",
		Short: "Print (or rotate) the token that admits a new node",
		Long: `Prints the join token of a role, and the command that joins a node with it.
--ttl D makes the token stop admitting nodes D from now (0: never, the default, as
Swarm's); a rotated token has no TTL unless --ttl is given with --rotate.
With -o json: {"role", "token", "manager" (the address to join at), "rotated", "expires"}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			var setTTL *time.Duration
			if cmd.Flags().Changed("ttl") {
				if ttl < 0 {
					return fmt.Errorf("--ttl %s: must not be negative", ttl)
				}
				setTTL = &ttl
			}
			c, role := newAPIClient(cmd), args[0]
			var out controlapi.TokenReport
			switch {
			case rotate:
				out, err = c.RotateToken(cmd.Context(), role, setTTL)
			case setTTL != nil:
				out, err = c.SetTokenTTL(cmd.Context(), role, ttl)
			default:
				out, err = c.Token(cmd.Context(), role)
			}
			if err != nil {
				return err
			}
			if format == outJSON {
				out.Rotated = rotate
				return writeJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n\nOn the new node:\n  gitorc join --token %s %s\n", out.Token, out.Token, out.Manager)
			if out.Expires != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "\nIt admits nodes until %s.\n", out.Expires.Local().Format(time.RFC1123))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "replace the token: the old one stops working")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "the token stops admitting nodes this long from now (0: never)")
	addOutputFlag(cmd)
	return cmd
}
