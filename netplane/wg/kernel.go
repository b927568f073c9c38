package wg

import (
	"fmt"

	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// kernelWG is a kernel WireGuard interface, configured through wgctrl's
// generic netlink socket (opened inside the interface's namespace).
type kernelWG struct {
	c    *wgctrl.Client
	name string
}

var _ backend = (*kernelWG)(nil)

// openKernel opens wgctrl on the interface name. It must run inside the
// interface's namespace (ns.Do): the netlink socket belongs to the
// namespace it was opened in.
func openKernel(name string) (*kernelWG, error) {
	c, err := wgctrl.New()
	if err != nil {
		return nil, fmt.Errorf("wgctrl: %w", err)
	}
	return &kernelWG{c: c, name: name}, nil
}

func (k *kernelWG) kernel() bool { return true }

func (k *kernelWG) configure(c wgtypes.Config) error {
	return k.c.ConfigureDevice(k.name, c)
}

func (k *kernelWG) peers() ([]wgtypes.Peer, error) {
	d, err := k.c.Device(k.name)
	if err != nil {
		return nil, err
	}
	d.PrivateKey = wgtypes.Key{}
	return d.Peers, nil
}

func (k *kernelWG) close() error { return k.c.Close() }
