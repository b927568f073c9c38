package wg

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/gitorc/gitorc/netplane/netns"
)

// userspace is wireguard-go running in this process.
type userspace struct {
	dev *device.Device
	// offloads reports whether the TUN took TSO/USO (IFF_VNET_HDR and
	// TUNSETOFFLOAD): wireguard-go then reads and writes 64 KiB segments
	// in batches instead of one packet per syscall.
	offloads bool
	closed   bool
}

var _ backend = (*userspace)(nil)

// startUserspace creates the TUN interface and a wireguard-go device on
// it with the key and the port, and brings the device up (its UDP
// sockets open). It must run inside ns (ns.Do): the TUN interface and
// the sockets are created in the calling thread's namespace.
func startUserspace(ns netns.NS, name string, mtu int, port uint16, key wgtypes.Key, log *slog.Logger) (*userspace, error) {
	// tun.CreateTUN asks for IFF_VNET_HDR and then enables TSO4/6 (and
	// USO4/6 where the kernel has them, 6.2+) with TUNSETOFFLOAD; its
	// BatchSize is conn.IdealBatchSize when that worked, 1 otherwise.
	t, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, fmt.Errorf("create tun %s: %w", name, err)
	}
	u := &userspace{offloads: t.BatchSize() > 1}
	u.dev = device.NewDevice(newNSTUN(t, ns), conn.NewDefaultBind(), deviceLogger(log))
	p := int(port)
	req := uapiSet(wgtypes.Config{PrivateKey: &key, ListenPort: &p})
	err = u.dev.IpcSetOperation(bytes.NewReader(req))
	clear(req)
	if err != nil {
		u.dev.Close()
		return nil, fmt.Errorf("configure %s: %w", name, err)
	}
	// Up opens the UDP sockets: here, inside ns. nsTUN hides the TUN's
	// up/down events from the device, so it never reopens them from
	// another goroutine (outside ns).
	if err := u.dev.Up(); err != nil {
		u.dev.Close()
		return nil, fmt.Errorf("bring %s up: %w", name, err)
	}
	return u, nil
}

func (u *userspace) kernel() bool { return false }

func (u *userspace) configure(c wgtypes.Config) error {
	if c.ListenPort != nil || c.PrivateKey != nil {
		// A new port makes wireguard-go reopen its sockets, in the calling
		// thread's namespace: Reconfig never does that, only Up.
		return fmt.Errorf("userspace device: key and port are set at creation only")
	}
	return u.dev.IpcSetOperation(bytes.NewReader(uapiSet(c)))
}

func (u *userspace) peers() ([]wgtypes.Peer, error) {
	var b bytes.Buffer
	err := u.dev.IpcGetOperation(&b)
	defer clear(b.Bytes()) // it holds the private key
	if err != nil {
		return nil, err
	}
	return uapiPeers(&b)
}

func (u *userspace) close() error {
	if !u.closed {
		u.closed = true
		u.dev.Close() // closes the TUN: the interface goes with it
	}
	return nil
}

// nsTUN is a TUN device whose MTU is read inside its namespace and whose
// up/down events are not passed on. wireguard-go's event reader runs on
// any thread: on EventUp it would (re)open the UDP sockets there, and the
// native TUN's MTU looks the interface up by name in the calling
// thread's namespace. The Device brings the device up itself, inside the
// namespace, and keeps it up until Close.
type nsTUN struct {
	tun.Device
	ns     netns.NS
	events chan tun.Event
}

func newNSTUN(t tun.Device, ns netns.NS) *nsTUN {
	n := &nsTUN{Device: t, ns: ns, events: make(chan tun.Event, 5)}
	go func() {
		defer close(n.events)
		for e := range t.Events() {
			if e &^= tun.EventUp | tun.EventDown; e != 0 {
				n.events <- e
			}
		}
	}()
	return n
}

func (n *nsTUN) Events() <-chan tun.Event { return n.events }

func (n *nsTUN) MTU() (int, error) {
	var mtu int
	err := n.ns.Do(func() error {
		var err error
		mtu, err = n.Device.MTU()
		return err
	})
	return mtu, err
}

// deviceLogger passes wireguard-go's logs to log: verbose lines at debug
// level (formatted only when enabled), errors as warnings, each distinct
// message at most once per errorEvery.
func deviceLogger(log *slog.Logger) *device.Logger {
	l := &device.Logger{Verbosef: device.DiscardLogf}
	if log.Enabled(context.Background(), slog.LevelDebug) {
		l.Verbosef = func(format string, args ...any) { log.Debug(fmt.Sprintf(format, args...)) }
	}
	var mu sync.Mutex
	last := make(map[string]time.Time)
	suppressed := make(map[string]int)
	l.Errorf = func(format string, args ...any) {
		mu.Lock()
		now := time.Now()
		if t, ok := last[format]; ok && now.Sub(t) < errorEvery {
			suppressed[format]++
			mu.Unlock()
			return
		}
		n := suppressed[format]
		last[format], suppressed[format] = now, 0
		mu.Unlock()
		if n > 0 {
			log.Warn(fmt.Sprintf(format, args...), "suppressed", n)
		} else {
			log.Warn(fmt.Sprintf(format, args...))
		}
	}
	return l
}

const errorEvery = 10 * time.Second
