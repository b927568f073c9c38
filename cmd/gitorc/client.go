package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"
)

// defaultSocket is where the daemon serves the control API by default.
var defaultSocket = socketFile(DefaultDataDir)

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

// apiClient calls the control API (cluster/controlapi) over the socket.
type apiClient struct {
	socket string
	hc     *http.Client
}

func newAPIClient(cmd *cobra.Command) *apiClient {
	socket := socketPath(cmd)
	return &apiClient{socket: socket, hc: unixClient(socket)}
}

// unixClient is an HTTP client whose every request goes to the socket.
func unixClient(socket string) *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}}}
}

// apiError is an error answer of the API; its message is the daemon's.
// body is the whole answer, for the commands whose error answers carry
// more than the message (stack deploy's plan).
type apiError struct {
	code int
	msg  string
	body []byte
}

func (e *apiError) Error() string { return e.msg }

// call sends in (if not nil) as JSON and decodes the answer into out (if not nil).
func (c *apiClient) call(ctx context.Context, method, path string, in, out any) error {
	if ctx == nil {
		ctx = context.Background()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://gitorc"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the gitorc daemon at %s: %w (is it running, and are you root? set --socket or GITORC_SOCKET)", c.socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return &apiError{code: resp.StatusCode, msg: e.Error, body: b}
		}
		return &apiError{code: resp.StatusCode, msg: fmt.Sprintf("%s %s: %s", method, path, resp.Status), body: b}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
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
