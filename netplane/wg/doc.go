// Package wg owns a node's WireGuard interface (gtrc-wg by default), its
// peers and the routes to them.
//
// Device.Up creates the interface: kernel WireGuard (a netlink link of
// type "wireguard", configured through wgctrl) where the kernel has it,
// else wireguard-go in process over /dev/net/tun (Config.Userspace forces
// the latter). Everything that opens sockets or devices runs inside
// Config.NS; netlink goes through a handle on it. wireguard-go's TUN
// device is created with IFF_VNET_HDR, which makes it enable TSO/USO on
// the TUN (the kernel hands it 64 KiB TCP segments and takes coalesced
// ones back: GSO/GRO) and UDP_SEGMENT/UDP_GRO on its sockets; Up logs
// whether the TUN took them ("offloads").
//
// Device.Reconfig takes the whole desired state — the node's gateway
// (held on the interface as /32) and one peer per other node — and
// changes only what differs: peers are added, updated in place (keeping
// their session) or removed one by one, never replaced wholesale; each
// peer subnet gets a route via the interface with the gateway as source,
// marked with RouteProtocol. Only routes with that mark are ever removed:
// other routes via the interface (the plane's VIP pool) are left alone.
// The same state again is a no-op that talks to neither the kernel nor
// the device. A new peer whose key sorts before the node's own gets its
// persistent keepalive (whose first one starts the handshake) only
// KeepaliveDelay later: of two nodes that add each other at once only the
// one with the lower key initiates, as crossing initiations leave both
// without a working session for 5 to 15 s (see plan.deferKeepalives).
//
// The private key lives only in Config.KeyFile (0600, base64 as wg(8)
// writes it) and in the device: no method returns it, no log or error
// shows it.
//
// Package wg imports netplane/netns and libraries only (netlink, wgctrl,
// wireguard-go), no other gitorc package.
package wg
