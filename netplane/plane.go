package netplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/netplane/cni"
	"github.com/gitorc/gitorc/netplane/dns"
	"github.com/gitorc/gitorc/netplane/netns"
	"github.com/gitorc/gitorc/netplane/nft"
	"github.com/gitorc/gitorc/netplane/wg"
)

// Names of what the plane makes in its namespace.
const (
	GatewayLink   = "lo"    // holds the gateway address, see ensureGateway
	LinkPrefix    = "gtrc-" // of every interface the plane makes
	WireGuardLink = LinkPrefix + "wg"
	TableName     = "gitorc"
)

// Defaults of Config.
const (
	DefaultWireGuardPort = 51820
	DefaultMTU           = 1420
)

// Files under Config.DataDir.
const (
	keyFile  = "wireguard.key"
	viewFile = "view.json"
	// sysctlFile keeps the sysctls' values from before the plane.
	sysctlFile = "sysctl.json"
	cniDir     = "cni"
)

// Log keys.
const (
	logKeyErr = "err"
)

// Config configures a Plane.
type Config struct {
	// DataDir holds the plane's files (see the package doc); absolute.
	DataDir string
	// NS is the network namespace the plane lives in; the zero NS is the
	// process's own.
	NS netns.NS
	// WireGuardPort is the overlay's UDP port (default 51820).
	WireGuardPort uint16
	// MTU of the overlay and of tasks' interfaces (default 1420: a 1500
	// byte underlay less WireGuard's overhead).
	MTU int
	// Upstreams are the resolvers (host:port) that names outside the
	// cluster are forwarded to.
	Upstreams []string
	// PluginDirs are where the CNI plugins are (default /usr/lib/cni,
	// /opt/cni/bin).
	PluginDirs []string
	// Userspace forces wireguard-go even where the kernel has WireGuard.
	Userspace bool
	Logger    *slog.Logger
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" || !filepath.IsAbs(c.DataDir) {
		errs = append(errs, fmt.Errorf("data dir %q must be an absolute path", c.DataDir))
	}
	if c.MTU < 0 || (c.MTU > 0 && c.MTU < 576) {
		errs = append(errs, fmt.Errorf("mtu %d: at least 576", c.MTU))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("network plane config: %w", err)
	}
	return nil
}

// Plane is one node's network plane. Create it with New, run it with Run,
// feed it views with Reconfig; the executor attaches tasks with Attach and
// Detach.
type Plane struct {
	cfg Config
	log *slog.Logger
	wg  *wg.Device
	cni *cni.Attacher
	tbl *nft.Table
	up  chan struct{} // closed once Run has brought the plane up

	mu       sync.Mutex // serialises Reconfig and teardown
	applied  *api.NetView
	gateway  netip.Prefix // on GatewayLink, zero when none yet
	pool     netip.Prefix // the task pool of the last view
	vipRoute netip.Prefix // the VIP pool routed via WireGuard
	dns      *dnsRun
	down     bool // Teardown ran
	// applies counts views applied (not the unchanged ones skipped).
	applies atomic.Int64
}

// dnsRun is a running DNS server.
type dnsRun struct {
	srv    *dns.Server
	addr   netip.Addr
	cancel context.CancelFunc
	done   chan error
}

// New prepares a plane: it loads or creates the node's WireGuard key and
// touches nothing in the kernel until Run.
func New(cfg Config) (*Plane, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.WireGuardPort == 0 {
		cfg.WireGuardPort = DefaultWireGuardPort
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("network plane: %w", err)
	}
	dev, err := wg.New(wg.Config{NS: cfg.NS, Name: WireGuardLink, KeyFile: filepath.Join(cfg.DataDir, keyFile),
		ListenPort: cfg.WireGuardPort, MTU: cfg.MTU, Userspace: cfg.Userspace, Logger: cfg.Logger.With("part", "wireguard")})
	if err != nil {
		return nil, fmt.Errorf("network plane: %w", err)
	}
	att, err := cni.New(cni.Config{NS: cfg.NS, PluginDirs: cfg.PluginDirs, CacheDir: filepath.Join(cfg.DataDir, cniDir),
		MTU: cfg.MTU, Logger: cfg.Logger.With("part", "cni")})
	if err != nil {
		return nil, fmt.Errorf("network plane: %w", err)
	}
	return &Plane{cfg: cfg, log: cfg.Logger, wg: dev, cni: att, up: make(chan struct{}),
		tbl: nft.NewTable(cfg.NS, nft.Options{Table: TableName, WGInterface: WireGuardLink})}, nil
}

// WireGuard is what other nodes need to reach this one.
func (p *Plane) WireGuard() api.WireGuardInfo {
	return api.WireGuardInfo{PublicKey: p.wg.PublicKey(), Port: p.wg.Port()}
}

// Run brings the plane up — forwarding on, the WireGuard interface, and
// the last view this node applied (so that it serves before it reaches a
// manager) — and keeps the DNS server running until ctx ends. Then the
// userspace WireGuard interface goes with the process; the rest (the
// gateway, the tasks' interfaces and the nftables table) stays for the
// tasks that keep running, unless no task is attached any more, in which
// case the plane removes itself entirely.
func (p *Plane) Run(ctx context.Context) error {
	if err := p.bringUp(ctx); err != nil {
		return err
	}
	if v, err := p.loadView(); err != nil {
		p.log.Warn("last network view unreadable; waiting for the managers' view", logKeyErr, err)
	} else if v != nil {
		if err := p.reconfig(v); err != nil {
			p.log.Warn("apply the last network view", logKeyErr, err)
		}
	}
	close(p.up)
	<-ctx.Done()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopDNS()
	if err := p.wg.Close(); err != nil {
		p.log.Warn("close WireGuard", logKeyErr, err)
	}
	if p.down {
		return nil
	}
	if ids, err := p.cni.Attached(); err == nil && len(ids) == 0 {
		// Nothing left to serve: leave no trace on the host.
		if err := p.removeAll(); err != nil {
			p.log.Warn("remove the idle network plane", logKeyErr, err)
		}
	}
	return nil
}

// sysctls the plane sets to 1: forwarding between tasks, nodes and the
// outside, and 127.0.0.1 as a source the published ports may DNAT.
var sysctls = []string{"net/ipv4/ip_forward", "net/ipv4/conf/all/route_localnet"}

// bringUp enables forwarding and creates the WireGuard interface. The
// values the sysctls had before the plane first changed them are kept in
// sysctlFile, for removeAll to put back.
func (p *Plane) bringUp(ctx context.Context) error {
	err := p.cfg.NS.Do(func() error {
		saved, err := p.savedSysctls()
		if err != nil {
			return err
		}
		changed := false
		for _, s := range sysctls {
			b, err := os.ReadFile("/proc/sys/" + s)
			if err != nil {
				return fmt.Errorf("sysctl %s: %w", s, err)
			}
			if _, ok := saved[s]; !ok {
				saved[s], changed = strings.TrimSpace(string(b)), true
			}
			if err := os.WriteFile("/proc/sys/"+s, []byte("1\n"), 0o644); err != nil {
				return fmt.Errorf("sysctl %s: %w", s, err)
			}
		}
		if !changed {
			return nil
		}
		b, _ := json.Marshal(saved)
		return os.WriteFile(filepath.Join(p.cfg.DataDir, sysctlFile), b, 0o600)
	})
	if err != nil {
		return fmt.Errorf("network plane: %w", err)
	}
	if err := p.wg.Up(ctx); err != nil {
		return fmt.Errorf("network plane: %w", err)
	}
	return nil
}

// waitUp waits until Run has brought the plane up.
func (p *Plane) waitUp(ctx context.Context) error {
	select {
	case <-p.up:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("network plane not up: %w", ctx.Err())
	}
}

// Reconfig applies a view: the gateway address, the WireGuard peers and
// their routes, the nftables table and the DNS answers, each changing
// only what differs. A view equal to the last one applied is a no-op.
func (p *Plane) Reconfig(ctx context.Context, v *api.NetView) error {
	if v == nil {
		return errors.New("network plane: no view")
	}
	if err := p.waitUp(ctx); err != nil {
		return err
	}
	return p.reconfig(v)
}

func (p *Plane) reconfig(v *api.NetView) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return errors.New("network plane: removed")
	}
	if p.applied != nil && p.applied.Equal(v) {
		return nil
	}
	if err := p.apply(v); err != nil {
		return fmt.Errorf("network plane: %w", err)
	}
	p.applied = v
	if err := p.saveView(v); err != nil {
		p.log.Warn("keep the network view", logKeyErr, err)
	}
	return nil
}

func (p *Plane) apply(v *api.NetView) error {
	p.applies.Add(1)
	var gw netip.Prefix
	if pool, err := netip.ParsePrefix(v.TaskPool); err == nil {
		p.pool = pool.Masked()
	}
	if v.Subnet != "" {
		subnet, err := netip.ParsePrefix(v.Subnet)
		if err != nil {
			return fmt.Errorf("view: subnet %q: %w", v.Subnet, err)
		}
		gw = netip.PrefixFrom(subnet.Masked().Addr().Next(), 32)
		if err := p.ensureGateway(gw); err != nil {
			return err
		}
	}
	peers := make([]wg.Peer, 0, len(v.Peers))
	for _, pe := range v.Peers {
		subnet, err := netip.ParsePrefix(pe.Subnet)
		if err != nil {
			p.log.Warn("peer with a bad subnet left out", "node", pe.NodeID, logKeyErr, err)
			continue
		}
		peers = append(peers, wg.Peer{PublicKey: pe.PublicKey, Endpoint: pe.Endpoint, Subnet: subnet})
	}
	if gw.IsValid() {
		if err := p.wg.Reconfig(gw.Addr(), peers); err != nil {
			return err
		}
		if vips, err := netip.ParsePrefix(v.VIPPool); err == nil {
			if err := p.ensureVIPRoute(vips.Masked(), gw.Addr()); err != nil {
				return err
			}
		}
	}
	rs, err := nft.Build(v, nft.Options{Table: TableName, WGInterface: WireGuardLink})
	if err != nil {
		return err
	}
	if _, err := p.tbl.Apply(rs); err != nil {
		return err
	}
	if gw.IsValid() {
		if err := p.ensureDNS(gw.Addr()); err != nil {
			return err
		}
		p.dns.srv.SetView(v)
	}
	return nil
}

// ensureDNS runs the DNS server on the gateway, restarting it when the
// gateway changed.
func (p *Plane) ensureDNS(addr netip.Addr) error {
	if p.dns != nil && p.dns.addr == addr {
		select {
		case err := <-p.dns.done:
			p.log.Warn("DNS server stopped; restarting", logKeyErr, err)
			p.dns = nil
		default:
			return nil
		}
	}
	p.stopDNS()
	srv, err := dns.New(dns.Config{NS: p.cfg.NS, Addr: addr, Upstreams: p.cfg.Upstreams, Logger: p.log.With("part", "dns")})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &dnsRun{srv: srv, addr: addr, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-r.done:
		cancel()
		return fmt.Errorf("DNS server on %s: %w", addr, err)
	case <-time.After(10 * time.Second):
		cancel()
		return fmt.Errorf("DNS server on %s did not start", addr)
	}
	p.dns = r
	return nil
}

func (p *Plane) stopDNS() {
	if p.dns == nil {
		return
	}
	p.dns.cancel()
	<-p.dns.done
	p.dns = nil
}

// Attach connects a task's network namespace with its address (CIDR of
// the node's subnet) and returns the nameserver of its resolv.conf: the
// node's gateway.
func (p *Plane) Attach(ctx context.Context, taskID, addr, nsPath string) (string, error) {
	pfx, err := netip.ParsePrefix(addr)
	if err != nil || !pfx.Addr().Is4() {
		return "", fmt.Errorf("attach %s: task address %q is not an IPv4 CIDR", taskID, addr)
	}
	if err := p.waitUp(ctx); err != nil {
		return "", fmt.Errorf("attach %s: %w", taskID, err)
	}
	gw := netip.PrefixFrom(pfx.Masked().Addr().Next(), 32)
	p.mu.Lock()
	err = p.ensureGateway(gw)
	p.mu.Unlock()
	if err != nil {
		return "", fmt.Errorf("attach %s: %w", taskID, err)
	}
	if err := p.cni.Attach(ctx, taskID, pfx, nsPath); err != nil {
		return "", fmt.Errorf("attach %s: %w", taskID, err)
	}
	return gw.Addr().String(), nil
}

// Detach undoes Attach; it is a no-op for a task never attached.
func (p *Plane) Detach(ctx context.Context, taskID, nsPath string) error {
	if err := p.cni.Detach(ctx, taskID, nsPath); err != nil {
		return fmt.Errorf("detach %s: %w", taskID, err)
	}
	return nil
}

// Teardown removes everything the plane made (gitorc leave): the tasks'
// attachments, the nftables table, the WireGuard and gateway interfaces,
// its routes and its files. The plane cannot be used afterwards.
func (p *Plane) Teardown(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopDNS()
	var errs []error
	ids, err := p.cni.Attached()
	if err != nil {
		errs = append(errs, err)
	}
	for _, id := range ids {
		if err := p.cni.Detach(ctx, id, ""); err != nil {
			errs = append(errs, err)
		}
	}
	if err := p.removeAll(); err != nil {
		errs = append(errs, err)
	}
	p.down = true
	return errors.Join(errs...)
}

// removeAll removes the table, the interfaces and the plane's files.
func (p *Plane) removeAll() error {
	var errs []error
	if err := p.tbl.Delete(); err != nil {
		errs = append(errs, err)
	}
	if err := p.wg.Delete(); err != nil {
		errs = append(errs, err)
	}
	if err := p.deleteGateway(); err != nil {
		errs = append(errs, err)
	}
	if err := p.restoreSysctls(); err != nil {
		errs = append(errs, err)
	}
	for _, f := range []string{viewFile, cniDir, sysctlFile} {
		if err := os.RemoveAll(filepath.Join(p.cfg.DataDir, f)); err != nil {
			errs = append(errs, err)
		}
	}
	p.applied, p.gateway, p.vipRoute = nil, netip.Prefix{}, netip.Prefix{}
	return errors.Join(errs...)
}

func (p *Plane) loadView() (*api.NetView, error) {
	b, err := os.ReadFile(filepath.Join(p.cfg.DataDir, viewFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v := new(api.NetView)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("%s: %w", viewFile, err)
	}
	return v, nil
}

func (p *Plane) saveView(v *api.NetView) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	path := filepath.Join(p.cfg.DataDir, viewFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (p *Plane) savedSysctls() (map[string]string, error) {
	saved := map[string]string{}
	b, err := os.ReadFile(filepath.Join(p.cfg.DataDir, sysctlFile))
	if errors.Is(err, os.ErrNotExist) {
		return saved, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &saved); err != nil {
		return nil, fmt.Errorf("%s: %w", sysctlFile, err)
	}
	return saved, nil
}

// restoreSysctls puts back what bringUp changed.
func (p *Plane) restoreSysctls() error {
	return p.cfg.NS.Do(func() error {
		saved, err := p.savedSysctls()
		if err != nil {
			return err
		}
		for _, s := range sysctls {
			if v, ok := saved[s]; ok {
				if err := os.WriteFile("/proc/sys/"+s, []byte(v+"\n"), 0o644); err != nil {
					return fmt.Errorf("sysctl %s: %w", s, err)
				}
			}
		}
		return nil
	})
}
