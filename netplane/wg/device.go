package wg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// backend is one WireGuard implementation behind the interface.
type backend interface {
	kernel() bool
	// configure applies a configuration (wgctrl's semantics: peers not
	// listed are left alone unless ReplacePeers, which the Device never
	// sets).
	configure(wgtypes.Config) error
	// peers reads the peers as the implementation holds them.
	peers() ([]wgtypes.Peer, error)
	close() error
}

// Device is a node's WireGuard interface. Create it with New, make the
// interface with Up, give it peers with Reconfig. Its methods are safe
// for concurrent use.
type Device struct {
	cfg Config
	log *slog.Logger
	key privateKey
	pub wgtypes.Key

	mu    sync.Mutex
	impl  backend // nil before Up and after Close
	index int     // the interface's index, when impl is set
	// applied is what the interface holds as far as the Device knows:
	// nil when it must be read back first (after Up, after a failure).
	applied *state
	// target is the last state applied in full (but for held back
	// keepalives, see pending): a Reconfig asking for it is a no-op. nil
	// when unknown.
	target *state
	// want is the last state Reconfig asked for, reapplied when Up makes
	// the interface anew.
	want *state
	// pending are the peers whose persistent keepalive is held back (see
	// plan.deferKeepalives), each with the time it is due: keepaliveDelay
	// after it was held back. keepaliveTimer turns on those due, at the
	// earliest due time.
	pending        map[wgtypes.Key]time.Time
	keepaliveTimer *time.Timer
	keepaliveGen   int // tells a stale timer's callback from the current one's
	keepaliveDelay time.Duration

	// ops counts the operations sent to the kernel or to the device
	// (netlink requests, configurations and reads), for tests.
	ops atomic.Int64
}

// privateKey holds a private key and prints as [redacted], however it is
// formatted or logged.
type privateKey struct{ k wgtypes.Key }

func (privateKey) String() string               { return "[redacted]" }
func (privateKey) GoString() string             { return "[redacted]" }
func (privateKey) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (privateKey) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte("[redacted]")) }
func (privateKey) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// New loads the private key from cfg.KeyFile, creating the file when it
// does not exist. It touches no interface.
func New(cfg Config) (*Device, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger.With(logKeyName, cfg.Name)
	k, err := loadOrCreateKey(cfg.KeyFile, log)
	if err != nil {
		return nil, fmt.Errorf("wireguard: %w", err)
	}
	return &Device{cfg: cfg, log: log, key: privateKey{k}, pub: k.PublicKey(), keepaliveDelay: KeepaliveDelay}, nil
}

// PublicKey is the device's public key, base64.
func (d *Device) PublicKey() string { return d.pub.String() }

// Port is the UDP port the device listens on.
func (d *Device) Port() uint16 { return d.cfg.ListenPort }

// String names the device by its interface and public key.
func (d *Device) String() string { return d.cfg.Name + " " + d.pub.String() }

// LogValue keeps the private key out of logs.
func (d *Device) LogValue() slog.Value {
	return slog.GroupValue(slog.String(logKeyName, d.cfg.Name), slog.String("public_key", d.pub.String()))
}

// Kernel reports whether the interface is kernel WireGuard (after Up);
// false for wireguard-go, and before Up.
func (d *Device) Kernel() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.impl != nil && d.impl.kernel()
}

// Up makes the interface if it does not exist — kernel WireGuard where
// the kernel has it and Config.Userspace is false, else wireguard-go —
// with the key, the port and the MTU, and sets it up. An interface of
// that name this Device did not make is reused when it is kernel
// WireGuard and kernel WireGuard is wanted (its peers are then read back
// by the next Reconfig), else deleted and made anew. When Up makes the
// interface anew, the peers of the last Reconfig are applied again. Up is
// idempotent.
func (d *Device) Up(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("wireguard up: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.up(); err != nil {
		return fmt.Errorf("wireguard %s up: %w", d.cfg.Name, err)
	}
	return nil
}

func (d *Device) up() error {
	h, err := d.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := d.linkByName(h)
	if err != nil {
		return err
	}
	if d.impl != nil {
		if link != nil && link.Attrs().Index == d.index {
			return d.setLink(h, link)
		}
		// Someone deleted the interface (or made another of its name).
		d.log.Warn("interface gone; making it again")
		d.closeImpl()
	}
	if link != nil && (d.cfg.Userspace || link.Type() != "wireguard") {
		// Not ours and not usable: a persistent TUN, a kernel interface
		// where userspace is wanted, any other kind of link.
		d.log.Warn("deleting a stale interface of the same name", "type", link.Type())
		d.ops.Add(1)
		if err := h.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("delete stale interface: %w", err)
		}
		link = nil
	}
	var impl backend
	if !d.cfg.Userspace {
		impl, link, err = d.upKernel(h, link)
		if err != nil {
			return err
		}
	}
	if impl == nil {
		var u *userspace
		err := d.cfg.NS.Do(func() error {
			var err error
			u, err = startUserspace(d.cfg.NS, d.cfg.Name, d.cfg.MTU, d.cfg.ListenPort, d.key.k, d.log)
			return err
		})
		d.ops.Add(1)
		if err != nil {
			return err
		}
		impl = u
		if link, err = d.linkByName(h); err == nil && link == nil {
			err = errors.New("the TUN interface vanished")
		}
		if err != nil {
			_ = u.close()
			return err
		}
		if u.offloads {
			d.log.Info("wireguard-go up", "port", d.cfg.ListenPort, "offloads", "tso,uso")
		} else {
			d.log.Warn("wireguard-go up without TUN offloads: every packet costs a syscall", "port", d.cfg.ListenPort, "offloads", "none")
		}
	}
	if err := d.setLink(h, link); err != nil {
		_ = impl.close()
		return err
	}
	d.impl, d.index, d.applied, d.target = impl, link.Attrs().Index, nil, nil
	if d.want != nil {
		if err := d.apply(h, d.want); err != nil {
			return fmt.Errorf("restore peers: %w", err)
		}
	}
	return nil
}

// upKernel makes (or takes, when link is kernel WireGuard already) the
// kernel interface and sets its key and port. It returns a nil backend
// and no error when the kernel has no WireGuard.
func (d *Device) upKernel(h *netlink.Handle, link netlink.Link) (backend, netlink.Link, error) {
	made := false
	if link == nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MTU = d.cfg.Name, d.cfg.MTU
		d.ops.Add(1)
		err := h.LinkAdd(&netlink.Wireguard{LinkAttrs: attrs})
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EAFNOSUPPORT) {
			d.log.Info("the kernel has no WireGuard; using wireguard-go")
			return nil, nil, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("add wireguard link: %w", err)
		}
		made = true
		if link, err = d.linkByName(h); err == nil && link == nil {
			err = errors.New("the new interface vanished")
		}
		if err != nil {
			return nil, nil, err
		}
	}
	fail := func(err error) (backend, netlink.Link, error) {
		if made {
			_ = h.LinkDel(link)
		}
		return nil, nil, err
	}
	var k *kernelWG
	err := d.cfg.NS.Do(func() error {
		var err error
		k, err = openKernel(d.cfg.Name)
		return err
	})
	if err != nil {
		return fail(err)
	}
	port := int(d.cfg.ListenPort)
	d.ops.Add(1)
	if err := k.configure(wgtypes.Config{PrivateKey: &d.key.k, ListenPort: &port}); err != nil {
		_ = k.close()
		return fail(fmt.Errorf("configure key and port: %w", err))
	}
	d.log.Info("kernel WireGuard up", "port", d.cfg.ListenPort, "reused", !made)
	return k, link, nil
}

// setLink gives the interface its MTU and sets it up, where it differs.
func (d *Device) setLink(h *netlink.Handle, link netlink.Link) error {
	if link.Attrs().MTU != d.cfg.MTU {
		d.ops.Add(1)
		if err := h.LinkSetMTU(link, d.cfg.MTU); err != nil {
			return fmt.Errorf("set mtu %d: %w", d.cfg.MTU, err)
		}
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		d.ops.Add(1)
		if err := h.LinkSetUp(link); err != nil {
			return fmt.Errorf("set link up: %w", err)
		}
	}
	return nil
}

// Reconfig makes the interface hold local (the node's gateway, as a host
// prefix) and exactly peers, each with Keepalive, and the main routing
// table hold one route per peer subnet via the interface with source
// local. It changes only what differs: a peer that did not change keeps
// its session, a removed peer and its route go, a changed endpoint or
// subnet is updated in place. The same arguments again (in any order)
// are a no-op that talks to neither the kernel nor the device. Routes
// via the interface that the Device did not make are left alone.
func (d *Device) Reconfig(local netip.Addr, peers []Peer) error {
	want, err := desired(local, peers, d.pub)
	if err != nil {
		return fmt.Errorf("wireguard reconfig: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.impl == nil {
		return fmt.Errorf("wireguard reconfig: %w", ErrNotUp)
	}
	d.want = want
	if d.target != nil && d.target.equal(want) {
		return nil
	}
	h, err := d.handle()
	if err != nil {
		return fmt.Errorf("wireguard reconfig: %w", err)
	}
	defer h.Close()
	if err := d.apply(h, want); err != nil {
		return fmt.Errorf("wireguard reconfig: %w", err)
	}
	return nil
}

// apply makes the interface hold want, reading back what it holds first
// unless d.applied knows it. The keepalives of new peers with a lower key
// than the device's are held back (plan.deferKeepalives) and, with those
// held back before, turned on when due. d.mu must be held and d.impl
// set.
func (d *Device) apply(h *netlink.Handle, want *state) error {
	have := d.applied
	if have == nil {
		var err error
		if have, err = d.read(h); err != nil {
			return err
		}
	}
	p := makePlan(have, want)
	held := p.deferKeepalives(d.pub, d.pending)
	for k := range d.pending {
		if _, ok := want.Peers[k]; !ok {
			delete(d.pending, k) // removed before its keepalive was due
		}
	}
	applied := want
	if len(held) > 0 {
		if d.pending == nil {
			d.pending = make(map[wgtypes.Key]time.Time)
		}
		applied = want.clone()
		due := time.Now().Add(d.keepaliveDelay)
		for _, k := range held {
			if _, ok := d.pending[k]; !ok {
				d.pending[k] = due
			}
			ps := applied.Peers[k]
			ps.Keepalive = 0
			applied.Peers[k] = ps
		}
	}
	d.scheduleKeepalives()
	if p.empty() {
		d.applied, d.target = applied, want
		return nil
	}
	d.applied, d.target = nil, nil // unknown until every step is done
	if err := d.execute(h, p); err != nil {
		return err
	}
	d.applied, d.target = applied, want
	var add, upd, del int
	for _, c := range p.Peers {
		switch c.Op {
		case peerAdd:
			add++
		case peerUpdate:
			upd++
		case peerRemove:
			del++
		}
	}
	d.log.Info("wireguard configured", "peers", len(want.Peers), "added", add, "updated", upd, "removed", del,
		"routes_set", len(p.SetRoutes), "routes_deleted", len(p.DelRoutes))
	d.log.Debug("wireguard plan", "plan", p.String())
	return nil
}

// scheduleKeepalives sets keepaliveTimer to the earliest due time of the
// pending keepalives, or stops it when there are none. d.mu must be held.
func (d *Device) scheduleKeepalives() {
	var first time.Time
	for _, due := range d.pending {
		if first.IsZero() || due.Before(first) {
			first = due
		}
	}
	if d.keepaliveTimer != nil {
		d.keepaliveTimer.Stop()
		d.keepaliveTimer = nil
	}
	d.keepaliveGen++
	if len(d.pending) == 0 {
		return
	}
	gen := d.keepaliveGen
	d.keepaliveTimer = time.AfterFunc(time.Until(first), func() { d.keepalivesDue(gen) })
}

// keepalivesDue turns on the held back keepalives that are due, and
// schedules the rest.
func (d *Device) keepalivesDue(gen int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if gen != d.keepaliveGen {
		return // stopped, or replaced by a newer timer
	}
	d.keepaliveTimer = nil
	if d.impl == nil {
		return
	}
	now := time.Now()
	for k, due := range d.pending {
		if !due.After(now) {
			delete(d.pending, k)
		}
	}
	if d.target == nil {
		// The last Reconfig failed: the next one turns them on.
		d.scheduleKeepalives()
		return
	}
	h, err := d.handle()
	if err == nil {
		defer h.Close()
		err = d.apply(h, d.target) // holds back those not due yet, and schedules them
	}
	if err != nil {
		d.log.Warn("turn on persistent keepalives", logKeyErr, err)
		d.scheduleKeepalives()
	}
}

// read reads back the interface's addresses, the routes the Device made
// via it and the device's peers.
func (d *Device) read(h *netlink.Handle) (*state, error) {
	s := &state{Peers: make(map[wgtypes.Key]peerState), Routes: make(map[netip.Prefix]netip.Addr)}
	link := d.linkRef()
	d.ops.Add(1)
	addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		if pf, ok := prefixOf(*a.IPNet); ok && !pf.Addr().IsLinkLocalUnicast() {
			s.Addrs = append(s.Addrs, pf)
		}
	}
	slices.SortFunc(s.Addrs, comparePrefixes)
	d.ops.Add(1)
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: d.index, Protocol: RouteProtocol},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		dst, ok := prefixOf(*r.Dst)
		if !ok {
			continue
		}
		src, _ := netip.AddrFromSlice(r.Src)
		s.Routes[dst] = src.Unmap()
	}
	d.ops.Add(1)
	peers, err := d.impl.peers()
	if err != nil {
		return nil, fmt.Errorf("read peers: %w", err)
	}
	for _, p := range peers {
		ps := peerState{Keepalive: p.PersistentKeepaliveInterval}
		if p.Endpoint != nil {
			ap := p.Endpoint.AddrPort()
			ps.Endpoint = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
		for _, a := range p.AllowedIPs {
			if pf, ok := prefixOf(a); ok {
				ps.AllowedIPs = append(ps.AllowedIPs, pf)
			}
		}
		slices.SortFunc(ps.AllowedIPs, comparePrefixes)
		s.Peers[p.PublicKey] = ps
	}
	return s, nil
}

// execute runs a plan's steps in order.
func (d *Device) execute(h *netlink.Handle, p *plan) error {
	link := d.linkRef()
	for _, a := range p.AddAddrs {
		d.ops.Add(1)
		if err := h.AddrAdd(link, &netlink.Addr{IPNet: ptr(ipNet(a))}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add address %s: %w", a, err)
		}
	}
	if len(p.Peers) > 0 {
		d.ops.Add(1)
		if err := d.impl.configure(wgtypes.Config{Peers: p.peerConfigs()}); err != nil {
			return fmt.Errorf("configure peers: %w", err)
		}
	}
	for _, r := range p.SetRoutes {
		d.ops.Add(1)
		if err := h.RouteReplace(d.route(r.Dst, r.Src)); err != nil {
			return fmt.Errorf("route %s: %w", r.Dst, err)
		}
	}
	for _, dst := range p.DelRoutes {
		d.ops.Add(1)
		if err := h.RouteDel(d.route(dst, netip.Addr{})); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("delete route %s: %w", dst, err)
		}
	}
	for _, a := range p.DelAddrs {
		d.ops.Add(1)
		if err := h.AddrDel(link, &netlink.Addr{IPNet: ptr(ipNet(a))}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("delete address %s: %w", a, err)
		}
	}
	return nil
}

// route is a route of the Device's: via the interface, in the main
// table, marked RouteProtocol (which RouteDel also matches on, so that
// it never removes another's route to the same destination).
func (d *Device) route(dst netip.Prefix, src netip.Addr) *netlink.Route {
	r := &netlink.Route{LinkIndex: d.index, Dst: ptr(ipNet(dst)), Scope: netlink.SCOPE_LINK,
		Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}
	if src.IsValid() {
		r.Src = net.IP(src.AsSlice())
	}
	return r
}

// linkRef names the interface by index for netlink calls that take a
// link.
func (d *Device) linkRef() netlink.Link {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: d.index, Name: d.cfg.Name}}
}

// PeerStatus is a peer as the device holds it.
type PeerStatus struct {
	PublicKey     string // base64
	Endpoint      string // host:port, empty when none
	AllowedIPs    []netip.Prefix
	Keepalive     time.Duration
	LastHandshake time.Time // zero when none yet
	RxBytes       int64
	TxBytes       int64
}

// Peers reads the peers back from the device, sorted by public key.
func (d *Device) Peers() ([]PeerStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.impl == nil {
		return nil, fmt.Errorf("wireguard peers: %w", ErrNotUp)
	}
	d.ops.Add(1)
	ps, err := d.impl.peers()
	if err != nil {
		return nil, fmt.Errorf("wireguard peers: %w", err)
	}
	out := make([]PeerStatus, 0, len(ps))
	for _, p := range ps {
		s := PeerStatus{PublicKey: p.PublicKey.String(), Keepalive: p.PersistentKeepaliveInterval,
			LastHandshake: p.LastHandshakeTime, RxBytes: p.ReceiveBytes, TxBytes: p.TransmitBytes}
		if p.Endpoint != nil {
			s.Endpoint = p.Endpoint.String()
		}
		for _, a := range p.AllowedIPs {
			if pf, ok := prefixOf(a); ok {
				s.AllowedIPs = append(s.AllowedIPs, pf)
			}
		}
		slices.SortFunc(s.AllowedIPs, comparePrefixes)
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b PeerStatus) int { return strings.Compare(a.PublicKey, b.PublicKey) })
	return out, nil
}

// Close stops a userspace device, whose interface goes with it, and lets
// go of a kernel one, whose interface stays (and keeps forwarding). Up
// may be called again.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closeImpl()
}

func (d *Device) closeImpl() error {
	if d.impl == nil {
		return nil
	}
	err := d.impl.close()
	d.impl, d.index, d.applied, d.target, d.pending = nil, 0, nil, nil, nil
	d.scheduleKeepalives() // stops the timer
	if err != nil {
		return fmt.Errorf("wireguard close: %w", err)
	}
	return nil
}

// Delete removes the interface, and with it every route via it (gitorc
// leave). It is not an error if there is none. The Device forgets its
// peers; Up makes a new, empty interface.
func (d *Device) Delete() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	if err := d.closeImpl(); err != nil {
		errs = append(errs, err)
	}
	d.want = nil
	if err := d.deleteLink(); err != nil {
		errs = append(errs, fmt.Errorf("wireguard delete: %w", err))
	}
	return errors.Join(errs...)
}

func (d *Device) deleteLink() error {
	h, err := d.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := d.linkByName(h)
	if err != nil || link == nil {
		return err
	}
	d.ops.Add(1)
	if err := h.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s: %w", d.cfg.Name, err)
	}
	return nil
}

// handle returns a netlink handle on the device's namespace.
func (d *Device) handle() (*netlink.Handle, error) {
	d.ops.Add(1)
	ns, err := d.cfg.NS.Handle()
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return h, nil
}

// linkByName returns the interface, nil when there is none.
func (d *Device) linkByName(h *netlink.Handle) (netlink.Link, error) {
	d.ops.Add(1)
	l, err := h.LinkByName(d.cfg.Name)
	if _, ok := errors.AsType[netlink.LinkNotFoundError](err); ok {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", d.cfg.Name, err)
	}
	return l, nil
}

func ptr[T any](v T) *T { return &v }
