package wg

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/gitorc/gitorc/netplane/netns"
)

// Defaults of Config.
const (
	DefaultName       = "gtrc-wg"
	DefaultListenPort = 51820
	DefaultMTU        = 1420
)

// Keepalive is every peer's persistent keepalive interval: it keeps NAT
// and conntrack entries on the path open.
const Keepalive = 25 * time.Second

// KeepaliveDelay is how long a node holds back the keepalive of a new
// peer whose key sorts before its own (see plan.deferKeepalives). That
// peer initiates at once; the delay only has to outlast the skew between
// the two nodes' Reconfig and a round trip, so that its initiation has
// come (and been answered) by then. It must stay well below WireGuard's
// handshake retry (REKEY_TIMEOUT, 5 s): when the peer's initiation came
// before this node knew the peer and was dropped, this node's own
// initiation, when the keepalive goes on, is what brings the session up.
const KeepaliveDelay = time.Second

// RouteProtocol marks the routes a Device makes (rtm_protocol; 103 is not
// registered in iproute2's rt_protos). Routes via the interface without
// it belong to someone else and are never removed.
const RouteProtocol netlink.RouteProtocol = 103

// Log keys.
const (
	logKeyErr  = "err"
	logKeyName = "interface"
)

// Config configures a Device.
type Config struct {
	// NS is the network namespace of the interface; the zero NS is the
	// process's own.
	NS netns.NS
	// Name of the interface (default DefaultName).
	Name string
	// KeyFile holds the private key; New creates it (0600) when missing.
	KeyFile string
	// ListenPort is the UDP port (default DefaultListenPort).
	ListenPort uint16
	// MTU of the interface (default DefaultMTU).
	MTU int
	// Userspace forces wireguard-go even where the kernel has WireGuard.
	Userspace bool
	Logger    *slog.Logger
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if n := c.Name; n != "" && (len(n) > 15 || strings.ContainsAny(n, "/: \t\n") || n == "." || n == "..") {
		errs = append(errs, fmt.Errorf("interface name %q: at most 15 characters, no '/', ':' or spaces", n))
	}
	if c.KeyFile == "" {
		errs = append(errs, errors.New("no key file"))
	}
	if c.MTU < 0 || (c.MTU > 0 && (c.MTU < 576 || c.MTU > 65535)) {
		errs = append(errs, fmt.Errorf("mtu %d: between 576 and 65535", c.MTU))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("wireguard config: %w", err)
	}
	return nil
}

// withDefaults returns c with its defaults filled in.
func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.ListenPort == 0 {
		c.ListenPort = DefaultListenPort
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
