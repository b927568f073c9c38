package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// commands are the constructors of the top-level subcommands, each in
// its own file: the node's (bootstrap, daemon, join, leave, unlock), then
// the clients of the control API, then those that work offline.
var commands = []func() *cobra.Command{
	// The node: start it, join it to a cluster, make it leave.
	newBootstrapCmd, newDaemonCmd, newJoinCmd, newLeaveCmd, newUnlockCmd,
	// The cluster: members, join tokens, settings, admin access.
	newNodeCmd, newTokenCmd, newClusterCmd, newUnlockKeyCmd, newCACmd, newAdminCertCmd, newContextCmd,
	// GitOps: where the stacks come from and how syncs go.
	newStatusCmd, newSyncCmd, newSuspendCmd, newResumeCmd, newHistoryCmd, newDiffCmd, newRollbackCmd, newSourceCmd,
	// What runs: stacks, services, tasks, their logs and the events.
	newStackCmd, newServiceCmd, newPsCmd, newLogsCmd, newEventsCmd,
	// What stacks use: networks, secrets, configs, registry logins, images.
	newNetworkCmd, newSecretCmd, newConfigCmd, newRegistryCmd, newImageCmd,
	// Offline: check and seal stack files, the version.
	newValidateCmd, newSealCmd, newVersionCmd,
}

// exitError carries an exit code other than 1 (e.g. gitorc diff's 2).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "gitorc",
		Short:         "GitOps orchestrator: a git push of stack files is a deployment",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("socket", "", "the daemon's control socket (default $GITORC_SOCKET, the current context, or "+defaultSocket+")")
	root.PersistentFlags().String("host", "", "a manager's API, tcp://ADDR:PORT, over mutual TLS with an admin certificate; several managers comma-separated are tried in turn when one cannot be reached (default $GITORC_HOST)")
	root.PersistentFlags().String("tls-dir", "", "the admin certificate for --host: ca.pem, cert.pem, key.pem (default $GITORC_TLS_DIR or the current context's)")
	for _, c := range commands {
		root.AddCommand(c())
	}
	return root
}

func main() {
	// compose-go logs through the global logrus logger; its warnings reach
	// the user as diagnostics instead.
	logrus.SetOutput(io.Discard)
	err := newRootCmd().Execute()
	if err == nil {
		return
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintln(os.Stderr, "gitorc:", msg)
	}
	os.Exit(code)
}
