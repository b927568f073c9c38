package cni

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	cniutils "github.com/containernetworking/cni/pkg/utils"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/gitorc/gitorc/netplane/netns"
)

// The attachment: one network of gitorc's own, one interface per task.
const (
	networkName = "gitorc"
	ifName      = "eth0"
	cniVersion  = "1.0.0"
)

// Log keys.
const (
	logKeyTask   = "task"
	logKeyAddr   = "addr"
	logKeyErr    = "err"
	logKeyOutput = "output"
)

// Attacher attaches tasks' network namespaces to the node with CNI's ptp
// plugin and static IPAM. It is safe for concurrent use; calls for one ID
// are serialised.
type Attacher struct {
	cfg   Config
	log   *slog.Logger
	cni   *libcni.CNIConfig
	locks keyedLocks
}

// New checks cfg and makes its cache directory.
func New(cfg Config) (*Attacher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("cni: %w", err)
	}
	exec := &invoke.DefaultExec{
		RawExec:       &invoke.RawExec{Stderr: stderrLog{cfg.Logger}},
		PluginDecoder: version.PluginDecoder{},
	}
	return &Attacher{cfg: cfg, log: cfg.Logger,
		cni: libcni.NewCNIConfigWithCacheDir(cfg.PluginDirs, cfg.CacheDir, exec)}, nil
}

// Attach gives the namespace at nsPath an eth0 with addr (CIDR of the
// node's subnet, e.g. 10.64.3.7/24), the subnet's first address as its
// gateway, a default route via it, and loopback up; the host end, in
// Config.NS, holds the gateway as /32 and a /32 route to addr.
//
// An existing attachment of id with the same address that passes CNI's
// CHECK is kept; one with another address, or failing its check, is
// replaced. On failure nothing of the attachment is left.
func (a *Attacher) Attach(ctx context.Context, id string, addr netip.Prefix, nsPath string) error {
	if err := cniutils.ValidateContainerID(id); err != nil {
		return fmt.Errorf("attach %q: %w", id, err)
	}
	gw, err := gatewayOf(addr)
	if err != nil {
		return fmt.Errorf("attach %s: %w", id, err)
	}
	conf, err := a.pluginConfig(addr, gw)
	if err != nil {
		return fmt.Errorf("attach %s: %w", id, err)
	}
	defer a.locks.lock(id)()
	rt := runtimeConf(id, nsPath)
	old, err := a.cachedConfig(rt)
	if err != nil {
		return fmt.Errorf("attach %s: %w", id, err)
	}
	if old != nil {
		if cachedAddr(old) == addr {
			err := a.cfg.NS.Do(func() error { return a.cni.CheckNetwork(ctx, old, rt) })
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				return fmt.Errorf("attach %s: %w", id, ctx.Err())
			}
			a.log.Info("attachment fails its check: attaching again", logKeyTask, id, logKeyErr, err)
		}
		if err := a.remove(ctx, old, rt); err != nil {
			return fmt.Errorf("attach %s: replace: %w", id, err)
		}
	}
	if err := linkUp(nsPath, "lo"); err != nil {
		return fmt.Errorf("attach %s: %w", id, err)
	}
	err = a.cfg.NS.Do(func() error {
		_, err := a.cni.AddNetwork(ctx, conf, rt)
		return err
	})
	if err != nil {
		// CNI's rule: a failed ADD is followed by a DEL, which removes
		// what the plugin made before it failed.
		if derr := a.cfg.NS.Do(func() error { return a.cni.DelNetwork(context.WithoutCancel(ctx), conf, rt) }); derr != nil {
			a.log.Warn("clean up after failed attach", logKeyTask, id, logKeyErr, derr)
		}
		return fmt.Errorf("attach %s: %w", id, err)
	}
	a.log.Debug("attached", logKeyTask, id, logKeyAddr, addr)
	return nil
}

// Detach undoes Attach (CNI DEL with the cached config) and drops the
// cache entry. It works when nsPath is gone already (the host end is
// removed then too), and is a no-op for an id that has no attachment.
func (a *Attacher) Detach(ctx context.Context, id, nsPath string) error {
	if err := cniutils.ValidateContainerID(id); err != nil {
		return fmt.Errorf("detach %q: %w", id, err)
	}
	defer a.locks.lock(id)()
	rt := runtimeConf(id, nsPath)
	conf, err := a.cachedConfig(rt)
	if err != nil {
		return fmt.Errorf("detach %s: %w", id, err)
	}
	if conf == nil {
		return nil
	}
	if err := a.remove(ctx, conf, rt); err != nil {
		return fmt.Errorf("detach %s: %w", id, err)
	}
	a.log.Debug("detached", logKeyTask, id)
	return nil
}

// Attached lists, sorted, the IDs that have an attachment in the cache:
// what a node leaving, or restarting after a crash, has to detach.
func (a *Attacher) Attached() ([]string, error) {
	atts, err := a.cni.GetCachedAttachments("")
	if err != nil {
		return nil, fmt.Errorf("cni cache: %w", err)
	}
	var ids []string
	for _, att := range atts {
		if att.Network == networkName && att.IfName == ifName {
			ids = append(ids, att.ContainerID)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// remove deletes the attachment conf (from the cache) describes: the host
// end of its veth pair (which takes the task's end with it), then CNI DEL,
// which drops the cache entry. Removing the host end first makes the
// result the same whether or not the task's namespace still exists: the
// kernel destroys a namespace, and the veth pair with it, only once
// nothing holds it, asynchronously.
func (a *Attacher) remove(ctx context.Context, conf *libcni.PluginConfig, rt *libcni.RuntimeConf) error {
	if err := a.removeHostEnd(conf, rt); err != nil {
		return err
	}
	drt := *rt
	if !isNetNS(rt.NetNS) {
		// ptp's DEL then only releases the address (nothing, for static).
		drt.NetNS = ""
	}
	return a.cfg.NS.Do(func() error { return a.cni.DelNetwork(ctx, conf, &drt) })
}

// removeHostEnd deletes the host end recorded in the cached result when a
// link of that name and MAC address is still in Config.NS.
func (a *Attacher) removeHostEnd(conf *libcni.PluginConfig, rt *libcni.RuntimeConf) error {
	res, err := a.cni.GetNetworkCachedResult(conf, rt)
	if err != nil || res == nil {
		return nil // no result to go by: DEL alone
	}
	r, err := current.NewResultFromResult(res)
	if err != nil {
		return nil
	}
	var host *current.Interface
	for _, i := range r.Interfaces {
		if i.Sandbox == "" && i.Name != "" {
			host = i
		}
	}
	if host == nil {
		return nil
	}
	h, err := a.cfg.NS.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", a.cfg.NS, err)
	}
	defer nl.Close()
	link, err := nl.LinkByName(host.Name)
	if err != nil {
		if errors.As(err, &netlink.LinkNotFoundError{}) {
			return nil
		}
		return fmt.Errorf("host end %s: %w", host.Name, err)
	}
	if link.Attrs().HardwareAddr.String() != host.Mac {
		return nil // the name was reused by another link
	}
	if err := nl.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete host end %s: %w", host.Name, err)
	}
	return nil
}

// cachedConfig returns the plugin config of id's attachment from the
// cache, or nil when it has none.
func (a *Attacher) cachedConfig(rt *libcni.RuntimeConf) (*libcni.PluginConfig, error) {
	b, _, err := a.cni.GetNetworkCachedConfig(&libcni.PluginConfig{Network: &types.PluginConf{Name: networkName}}, rt)
	if err != nil {
		return nil, fmt.Errorf("cni cache: %w", err)
	}
	if b == nil {
		return nil, nil
	}
	conf, err := libcni.NetworkPluginConfFromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("cni cache of %s: %w", rt.ContainerID, err)
	}
	return conf, nil
}

// ptpConf is the ptp plugin's config with static IPAM.
type ptpConf struct {
	CNIVersion string     `json:"cniVersion"`
	Name       string     `json:"name"`
	Type       string     `json:"type"`
	MTU        int        `json:"mtu"`
	IPMasq     bool       `json:"ipMasq"`
	IPAM       staticIPAM `json:"ipam"`
}

type staticIPAM struct {
	Type      string          `json:"type"`
	Addresses []staticAddress `json:"addresses"`
	Routes    []staticRoute   `json:"routes"`
}

type staticAddress struct {
	Address string `json:"address"`
	Gateway string `json:"gateway"`
}

type staticRoute struct {
	Dst string `json:"dst"`
}

func (a *Attacher) pluginConfig(addr netip.Prefix, gw netip.Addr) (*libcni.PluginConfig, error) {
	b, err := json.Marshal(ptpConf{
		CNIVersion: cniVersion, Name: networkName, Type: "ptp", MTU: a.cfg.MTU,
		IPAM: staticIPAM{Type: "static",
			Addresses: []staticAddress{{Address: addr.String(), Gateway: gw.String()}},
			Routes:    []staticRoute{{Dst: "0.0.0.0/0"}}},
	})
	if err != nil {
		return nil, err
	}
	return libcni.NetworkPluginConfFromBytes(b)
}

// cachedAddr is the address a cached config gives, or the zero prefix.
func cachedAddr(conf *libcni.PluginConfig) netip.Prefix {
	var c ptpConf
	if err := json.Unmarshal(conf.Bytes, &c); err != nil || len(c.IPAM.Addresses) != 1 {
		return netip.Prefix{}
	}
	p, _ := netip.ParsePrefix(c.IPAM.Addresses[0].Address)
	return p
}

// gatewayOf checks a task address and returns its subnet's gateway, the
// subnet's first address.
func gatewayOf(addr netip.Prefix) (netip.Addr, error) {
	if !addr.IsValid() || !addr.Addr().Is4() {
		return netip.Addr{}, fmt.Errorf("address %s: not an IPv4 CIDR", addr)
	}
	if addr.Bits() > 30 {
		return netip.Addr{}, fmt.Errorf("address %s: a /%d leaves no room for a gateway", addr, addr.Bits())
	}
	network := addr.Masked().Addr()
	gw := network.Next()
	b := network.As4()
	binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(b[:])|(1<<(32-addr.Bits())-1))
	bcast := netip.AddrFrom4(b)
	switch addr.Addr() {
	case network, gw, bcast:
		return netip.Addr{}, fmt.Errorf("address %s is its subnet's network, gateway or broadcast address", addr)
	}
	return gw, nil
}

func runtimeConf(id, nsPath string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: id, NetNS: nsPath, IfName: ifName}
}

// linkUp sets the link name up in the namespace at nsPath.
func linkUp(nsPath, name string) error {
	ns := netns.NS{Path: nsPath}
	h, err := ns.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", ns, err)
	}
	defer nl.Close()
	link, err := nl.LinkByName(name)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", name, ns, err)
	}
	if err := nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up in %s: %w", name, ns, err)
	}
	return nil
}

// isNetNS reports whether path is a bound network namespace.
func isNetNS(path string) bool {
	var st unix.Statfs_t
	if path == "" || unix.Statfs(path, &st) != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// stderrLog logs what plugins write to stderr (their errors come on
// stdout, in the result).
type stderrLog struct{ log *slog.Logger }

func (w stderrLog) Write(p []byte) (int, error) {
	w.log.Debug("cni plugin stderr", logKeyOutput, strings.TrimSpace(string(p)))
	return len(p), nil
}

// keyedLocks serialises calls per key.
type keyedLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	mu    sync.Mutex
	users int
}

// lock locks key and returns its unlock.
func (k *keyedLocks) lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyLock{}
		k.m[key] = l
	}
	l.users++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.users--; l.users == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
