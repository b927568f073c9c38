package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/cluster/node"
	"github.com/spf13/cobra"
)

// defaultSocket is where the daemon serves the control API by default.
var defaultSocket = node.Socket(node.DefaultDataDir)

// socketPath is the control socket a command talks to: its --socket flag
// if it has one and it is set, else $GITORC_SOCKET, else defaultSocket.
func socketPath(cmd *cobra.Command) string {
	if f := cmd.Flag("socket"); f != nil && f.Value.String() != "" {
		return f.Value.String()
	}
	if s := os.Getenv("GITORC_SOCKET"); s != "" {
		return s
	}
	return defaultSocket
}

// newAPIClient is the typed client (cluster/controlapi/client) of the
// command's target: a control socket, or a manager's API port over mutual
// TLS (target.go). A target that could not be set up makes a client whose
// calls return the reason.
func newAPIClient(cmd *cobra.Command) *client.Client {
	t, err := resolveTarget(cmd)
	if err != nil {
		return client.Failed(err)
	}
	if t.host == "" {
		return client.Unix(t.socket).WithTimeout(callTimeout)
	}
	cfg, err := remoteTLS(t.tlsDir)
	if err != nil {
		return client.Failed(fmt.Errorf("%s (%s): %w", t.host, t.from, err))
	}
	return client.Remote(t.host, t.from, cfg).WithTimeout(callTimeout)
}

// callTimeout bounds a CLI call; commands whose work the daemon bounds
// longer (leave) wait longer (WithTimeout). Tests shorten it.
var callTimeout = client.DefaultTimeout

// apiStatus is the HTTP status of an API error answer (0: not one), and
// its message.
func apiStatus(err error) (int, string) {
	var ae *client.Error
	if errors.As(err, &ae) {
		return ae.Code, ae.Message
	}
	return 0, ""
}

// now is the CLI's clock for ages; tests fix it.
var now = time.Now

// age prints how long ago t was, coarsely ("42s", "5m", "3h", "2d").
func age(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return coarse(now().Sub(t))
}

// coarse prints a duration as age does.
func coarse(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// shortID abbreviates an ID for tables; the API accepts unique prefixes of node IDs.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func addOutputFlag(cmd *cobra.Command) {
	cmd.Flags().StringP("output", "o", "", "output format: text or json")
}
