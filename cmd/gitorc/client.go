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

// apiClient calls the control API (cluster/controlapi): over a control
// socket, or over mutual TLS on a manager's API port (host set). A client
// whose target could not be set up carries the reason in err, which its
// calls return.
type apiClient struct {
	socket string
	hc     *http.Client
	// host is the manager's API address (host:port) of a remote client;
	// from says how it was chosen, for error messages.
	host, from string
	err        error
}

func newAPIClient(cmd *cobra.Command) *apiClient {
	t, err := resolveTarget(cmd)
	if err != nil {
		return &apiClient{err: err}
	}
	if t.host == "" {
		return &apiClient{socket: t.socket, hc: unixClient(t.socket)}
	}
	hc, err := remoteClient(t.tlsDir)
	if err != nil {
		return &apiClient{err: fmt.Errorf("%s (%s): %w", t.host, t.from, err)}
	}
	return &apiClient{host: t.host, from: t.from, hc: hc}
}

// callTimeout bounds a CLI call; commands whose work the daemon bounds
// longer (leave) wait longer (withTimeout). Tests shorten it.
var callTimeout = time.Minute

// unixClient is an HTTP client whose every request goes to the socket.
func unixClient(socket string) *http.Client {
	return &http.Client{Timeout: callTimeout, Transport: &http.Transport{
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

// maxLeaderHops bounds how often a call follows a follower to the leader.
const maxLeaderHops = 3

// call sends in (if not nil) as JSON and decodes the answer into out (if
// not nil). A remote call that a follower could not serve (503) and that
// names the leader is sent again to the leader.
func (c *apiClient) call(ctx context.Context, method, path string, in, out any) error {
	if c.err != nil {
		return c.err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = b
	}
	for hop := 0; ; hop++ {
		resp, b, err := c.send(ctx, method, path, body, in != nil)
		if err != nil {
			return err
		}
		if leader := resp.Header.Get(leaderHeader); c.host != "" && resp.StatusCode == http.StatusServiceUnavailable &&
			leader != "" && leader != c.host && hop < maxLeaderHops {
			c.host, c.from = leader, "the leader, named by "+c.host
			continue
		}
		return decodeAnswer(method, path, resp, b, out)
	}
}

// send makes one request and reads its whole answer.
func (c *apiClient) send(ctx context.Context, method, path string, body []byte, hasBody bool) (*http.Response, []byte, error) {
	base := "http://gitorc"
	if c.host != "" {
		base = "https://" + c.host
	}
	var rd io.Reader
	if hasBody {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return nil, nil, err
	}
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if c.host != "" {
			return nil, nil, fmt.Errorf("cannot reach the manager at %s (%s): %w", c.host, c.from, remoteErr(err))
		}
		return nil, nil, fmt.Errorf("cannot reach the gitorc daemon at %s: %w (is it running, and are you root? set --socket or GITORC_SOCKET, or --host)", c.socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return resp, b, nil
}

// decodeAnswer turns an answer into out or an *apiError.
func decodeAnswer(method, path string, resp *http.Response, b []byte, out any) error {
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

// withTimeout is c with calls bounded by d instead of callTimeout: for a
// call the daemon may take longer to answer than that, by design.
func (c *apiClient) withTimeout(d time.Duration) *apiClient {
	if c.hc != nil {
		hc := *c.hc
		hc.Timeout = d
		c.hc = &hc
	}
	return c
}
