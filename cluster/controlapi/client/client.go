package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gitorc/gitorc/cluster/controlapi"
)

// DefaultTimeout bounds a call; WithTimeout changes it. Streams (Events,
// Logs) are bounded by their context only.
const DefaultTimeout = time.Minute

// maxLeaderHops bounds how often a call follows a follower to the leader.
const maxLeaderHops = 3

// Client calls the control API: over a manager's (or a node's) control
// socket, or over mutual TLS on a manager's API port. A client whose
// target could not be set up (Failed) returns the reason from every call.
// A Client is safe for concurrent use, but a remote one that followed a
// follower to the leader, or failed over to another manager, keeps
// calling that one.
type Client struct {
	hc     *http.Client
	socket string
	err    error

	mu sync.Mutex
	// host is the manager's API address (host:port) of a remote client;
	// from says how it was chosen, for error messages.
	host, from string
	// hosts are the managers a remote client may call (host among them):
	// when host cannot be dialled, the call goes to the next.
	hosts []string
}

// Unix is a client of the control socket at path.
func Unix(socket string) *Client {
	return &Client{socket: socket, hc: &http.Client{Timeout: DefaultTimeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}}}}
}

// DialTimeout bounds connecting to a manager's API port: a manager whose
// packets are dropped is given up on after it (and the next one tried).
const DialTimeout = 5 * time.Second

// Remote is a client of a manager's API port at host (host:port), with
// cfg holding the cluster's CA and an admin certificate. from says how
// host was chosen ("--host", "context prod"), for error messages. host
// may list several managers, comma-separated: a call goes to the first,
// and to the next when one cannot be connected to (nothing was sent to
// it, so a write is never sent twice), as etcdctl's --endpoints.
func Remote(host, from string, cfg *tls.Config) *Client {
	hosts := strings.Split(host, ",")
	// HTTP/1.1 by ALPN: h2 on the API port is the nodes' gRPC.
	return &Client{host: hosts[0], hosts: hosts, from: from, hc: &http.Client{Timeout: DefaultTimeout, Transport: &http.Transport{
		DialContext:     (&net.Dialer{Timeout: DialTimeout}).DialContext,
		TLSClientConfig: cfg, TLSHandshakeTimeout: 10 * time.Second, ForceAttemptHTTP2: false}}}
}

// Failed is a client whose every call returns err: for a target that
// could not be set up, so that the command fails where it calls.
func Failed(err error) *Client { return &Client{err: err} }

// WithTimeout is a copy of c whose calls are bounded by d instead: for a
// call the daemon may take longer to answer, by design (Leave).
func (c *Client) WithTimeout(d time.Duration) *Client {
	host, from := c.target()
	cc := Client{hc: c.hc, socket: c.socket, err: c.err, host: host, from: from, hosts: c.hosts}
	if c.hc != nil {
		hc := *c.hc
		hc.Timeout = d
		cc.hc = &hc
	}
	return &cc
}

// Remote reports whether c calls a manager's API port (not a socket).
func (c *Client) Remote() bool {
	host, _ := c.target()
	return host != ""
}

// target is the manager a remote client calls now, and how it was chosen.
func (c *Client) target() (host, from string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.host, c.from
}

// retarget makes the client call host from now on, unless another call
// moved it already (from was).
func (c *Client) retarget(was, host, from string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.host == was {
		c.host, c.from = host, from
	}
}

// Error is an error answer of the API; its message is the daemon's. Body
// is the whole answer, for the endpoints whose error answers carry more
// than the message (a stack deploy's plan).
type Error struct {
	Code    int
	Message string
	Body    []byte
}

func (e *Error) Error() string { return e.Message }

// StatusOf is the HTTP status of an API error answer, 0 for another error.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// call sends in (if not nil) as JSON and decodes the answer into out (if
// not nil). A remote call that a follower could not serve (503) and that
// names the leader is sent again to the leader.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
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
		host, _ := c.target()
		resp, b, err := c.send(ctx, method, path, body, in != nil)
		if err != nil {
			return err
		}
		if leader := resp.Header.Get(controlapi.LeaderHeader); host != "" && resp.StatusCode == http.StatusServiceUnavailable &&
			leader != "" && leader != host && hop < maxLeaderHops {
			c.retarget(host, leader, "the leader, named by "+host)
			continue
		}
		return decodeAnswer(method, path, resp, b, out)
	}
}

func base(host string) string {
	if host != "" {
		return "https://" + host
	}
	return "http://gitorc"
}

// send makes one request and reads its whole answer. A remote client
// that cannot connect to its manager tries the others it was given, each
// once.
func (c *Client) send(ctx context.Context, method, path string, body []byte, hasBody bool) (*http.Response, []byte, error) {
	host, from := c.target()
	resp, err := c.do(ctx, host, method, path, body, hasBody)
	for i := 1; err != nil && notConnected(err) && i < len(c.hosts) && ctx.Err() == nil; i++ {
		next := c.hosts[(slices.Index(c.hosts, host)+1)%len(c.hosts)]
		if next == host {
			break
		}
		c.retarget(host, next, fmt.Sprintf("%s, as %s could not be reached", from, host))
		host, from = c.target()
		resp, err = c.do(ctx, host, method, path, body, hasBody)
	}
	if err != nil {
		return nil, nil, c.unreachable(host, from, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return resp, b, nil
}

// do makes one request to host ("" for the socket).
func (c *Client) do(ctx context.Context, host, method, path string, body []byte, hasBody bool) (*http.Response, error) {
	var rd io.Reader
	if hasBody {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base(host)+path, rd)
	if err != nil {
		return nil, err
	}
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.hc.Do(req)
}

// notConnected reports whether a request failed before a connection was
// made: nothing was sent, so it may go to another manager.
func notConnected(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// unreachable explains a request that got no answer.
func (c *Client) unreachable(host, from string, err error) error {
	if host != "" {
		if len(c.hosts) > 1 {
			return fmt.Errorf("cannot reach any of the managers %s (%s; the last tried: %s): %w", strings.Join(c.hosts, ", "), from, host, remoteErr(err))
		}
		return fmt.Errorf("cannot reach the manager at %s (%s): %w", host, from, remoteErr(err))
	}
	return fmt.Errorf("cannot reach the gitorc daemon at %s: %w (is it running, and are you root? set --socket or GITORC_SOCKET, or --host)", c.socket, err)
}

// remoteErr explains a refused handshake: the manager sends only an alert.
func remoteErr(err error) error {
	if err != nil && strings.Contains(err.Error(), "remote error: tls:") {
		return fmt.Errorf("%w (the manager refused the certificate at the TLS handshake: not signed by this cluster's CA, or expired)", err)
	}
	return err
}

// decodeAnswer turns an answer into out or an *Error.
func decodeAnswer(method, path string, resp *http.Response, b []byte, out any) error {
	if resp.StatusCode/100 != 2 {
		var e controlapi.Error
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return &Error{Code: resp.StatusCode, Message: e.Error, Body: b}
		}
		return &Error{Code: resp.StatusCode, Message: fmt.Sprintf("%s %s: %s", method, path, resp.Status), Body: b}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// stream makes a GET whose answer is read as it comes (no time limit but
// ctx's); an error answer is returned as the API's *Error.
func (c *Client) stream(ctx context.Context, path string) (io.ReadCloser, error) {
	if c.err != nil {
		return nil, c.err
	}
	host, from := c.target()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base(host)+path, nil)
	if err != nil {
		return nil, err
	}
	hc := *c.hc
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return nil, c.unreachable(host, from, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, decodeAnswer(http.MethodGet, path, resp, b, nil)
	}
	return resp.Body, nil
}
