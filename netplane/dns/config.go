package dns

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/gitorc/gitorc/netplane/netns"
)

// Defaults of Config.
const (
	DefaultPort    = 53
	DefaultTimeout = 2 * time.Second
)

// VIPTTL is the TTL of answers made of VIPs, which change only when a
// service is removed; answers made of task addresses have TTL 0.
const VIPTTL = 10

// Config configures a Server.
type Config struct {
	// NS is the plane's network namespace: the listeners and the upstream
	// sockets are opened inside it. The zero NS is the process's own.
	NS netns.NS
	// Addr is the address to listen on (the node's gateway); required.
	Addr netip.Addr
	// Port to listen on, udp and tcp (default DefaultPort).
	Port int
	// Upstreams are the resolvers other names are forwarded to, tried in
	// order: "ip:port", or a plain IP for port 53. None: other names
	// answer SERVFAIL.
	Upstreams []string
	// Timeout of one exchange with an upstream (default DefaultTimeout).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if !c.Addr.IsValid() {
		errs = append(errs, errors.New("listen address is required"))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d is out of range [1, 65535]", c.Port))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s is negative", c.Timeout))
	}
	for _, u := range c.Upstreams {
		if _, err := parseUpstream(u); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dns config: %w", err)
	}
	return nil
}

// parseUpstream returns an upstream as ip:port.
func parseUpstream(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return ap, fmt.Errorf("upstream %q: port 0", s)
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a.Unmap(), DefaultPort), nil
	}
	return netip.AddrPort{}, fmt.Errorf("upstream %q is not ip:port", s)
}

func (c *Config) withDefaults() Config {
	d := *c
	if d.Port == 0 {
		d.Port = DefaultPort
	}
	if d.Timeout == 0 {
		d.Timeout = DefaultTimeout
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	d.Upstreams = make([]string, 0, len(c.Upstreams))
	for _, u := range c.Upstreams {
		ap, _ := parseUpstream(u) // Validate passed
		d.Upstreams = append(d.Upstreams, ap.String())
	}
	return d
}

// listenAddr is where the server listens.
func (c *Config) listenAddr() string {
	return netip.AddrPortFrom(c.Addr, uint16(c.Port)).String()
}
