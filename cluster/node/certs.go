package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/gitorc/gitorc/cluster/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Node certificates: renewal and roles.
//
// A node asks a manager every roleCheckPeriod which role the cluster wants
// it in (gitorc node promote|demote set it). When that differs from the
// role in its certificate, or the certificate nears its end (the last
// third of its life), it sends a new key's CSR and gets a certificate for
// the wanted role: renewal is also how a role change reaches the node, as
// in Swarm. The answer also says which roots to trust and, during a root
// rotation (carotate.go), which root the certificate must be of: a node
// with a certificate of another renews it. A new role restarts the node's
// services in that role; a renewed certificate in the same role is
// swapped in place (every TLS configuration reads it, and the roots, at
// each handshake).
//
// Removed nodes are refused at the TLS handshake by every manager
// (admitNode), and only current Raft members may speak Raft or forward
// writes (admitRaftPeer, managersOnly), so a demoted or removed manager's
// certificate opens nothing while it is still valid.

// roleCheckPeriod is how often a node asks for its role.
const roleCheckPeriod = 5 * time.Second

// errRoleChanged stops a node's services to start them in a new role.
var errRoleChanged = errors.New("the cluster changed this node's role")

// run serves until ctx ends, in whatever role the cluster gives the node.
func (d *daemon) run(ctx context.Context) error {
	if err := privateDataDir(d.dir); err != nil {
		return err
	}
	d.left = make(chan struct{})
	stopMetrics, err := d.startMetrics(ctx)
	if err != nil {
		return err
	}
	defer stopMetrics()
	for {
		err := d.runRole(ctx)
		if errors.Is(err, errLeft) {
			d.log.Info("left the cluster: deleting this node's state")
			return d.forget()
		}
		if !errors.Is(err, errRoleChanged) {
			return err
		}
		d.log.Info("restarting in the new role", "role", d.state.Role, "worker", d.state.Worker)
		d.store, d.newRoot, d.first = nil, nil, false
		d.storeRef.Store(nil)
		d.ident = ageIdentity{}
	}
}

// issue signs a node's certificate with the cluster's CA key (from the
// store); its errors are gRPC statuses.
func (d *daemon) issue(csr []byte, nodeID string, role api.NodeRole) ([]byte, error) {
	// The new root, during a rotation, with the certificate that lets
	// nodes that trust the current root alone verify it (carotate.go).
	sg, err := d.signer()
	if err != nil {
		return nil, status.Error(codes.Unavailable, "this manager cannot issue certificates yet: "+err.Error())
	}
	cert, err := sg.root.Issue(csr, nodeID, role)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return append(cert, sg.chain...), nil
}

// managerClientTLS is this node's TLS configuration for calling managers.
func (d *daemon) managerClientTLS() (*tls.Config, error) {
	return ca.TLSConfig{Roots: d.pki.rootCerts, Current: d.pki.current, PeerRoles: []api.NodeRole{api.RoleManager}}.Client()
}

// renewLoop keeps the node's certificate fresh and in the wanted role.
func (d *daemon) renewLoop(ctx context.Context) error {
	cliTLS, err := d.managerClientTLS()
	if err != nil {
		return err
	}
	conns := map[string]*grpc.ClientConn{}
	defer func() {
		for _, cc := range conns {
			_ = cc.Close()
		}
	}()
	next := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(roleCheckPeriod):
		}
		// Managers ask themselves first; every node moves on to the next
		// manager of its list when one fails.
		addrs := d.state.Managers
		if d.state.Role == api.RoleManager && !slices.Contains(addrs, d.state.Advertise) {
			addrs = append([]string{d.state.Advertise}, addrs...)
		}
		if len(addrs) == 0 {
			continue
		}
		addr := addrs[next%len(addrs)]
		cc, ok := conns[addr]
		if !ok {
			if cc, err = grpc.NewClient(addr, append(wire.DialOptions(), grpc.WithTransportCredentials(credentials.NewTLS(cliTLS)))...); err != nil {
				return err
			}
			conns[addr] = cc
		}
		before := d.pki.current()
		err := d.renewOnce(ctx, cc)
		if errors.Is(err, errRoleChanged) {
			return err
		}
		if d.pki.current() != before {
			// New connections show the new certificate, so that the
			// managers see (and record) what this node now holds.
			for a, cc := range conns {
				_ = cc.Close()
				delete(conns, a)
			}
		}
		if err != nil {
			// Routine while a manager is away; a warning once the
			// certificate is due, since it stops working when it expires.
			level := slog.LevelDebug
			if d.pki.current().NeedsRenewal(time.Now()) {
				level = slog.LevelWarn
			}
			d.log.Log(ctx, level, "certificate check failed", "manager", addr, "not_after", d.pki.current().Identity.NotAfter, "err", err)
			next++
		}
	}
}

// renewOnce asks for the node's role and renews its certificate when the
// role changed or the certificate nears its end.
func (d *daemon) renewOnce(ctx context.Context, cc grpc.ClientConnInterface) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := wire.Renew(ctx, cc, &wire.RenewRequest{})
	if err != nil {
		return err
	}
	if len(resp.Managers) > 0 && d.state.Role == api.RoleWorker && !slices.Equal(resp.Managers, d.state.Managers) {
		// Workers follow the managers as they come and go.
		d.state.Managers = resp.Managers
		if err := saveState(d.dir, d.state); err != nil {
			return err
		}
	}
	// The roots to trust, and during a root rotation a certificate of the
	// new one (carotate.go).
	onNext, err := d.followRoots(resp.Roots, resp.RotateTo)
	if err != nil {
		return err
	}
	cur := d.pki.current()
	if resp.Role == cur.Identity.Role && !cur.NeedsRenewal(time.Now()) && onNext {
		return nil
	}
	csr, key, err := ca.NewCSR(d.state.ID)
	if err != nil {
		return err
	}
	req := &wire.RenewRequest{CSR: csr}
	st := *d.state
	if resp.Role == api.RoleManager && cur.Identity.Role != api.RoleManager {
		// Promoted: this node will serve the managers' API and Raft, on
		// the addresses it had as a manager before, if it was one (or
		// was stopped half-way through this promotion).
		if st.Listen == "" {
			st.Listen = "0.0.0.0:4270"
		}
		if st.Advertise == "" {
			if st.Advertise, err = advertiseAddr(st.Listen, ""); err != nil {
				return err
			}
		}
		if st.RaftListen == "" || st.RaftAdvertise == "" {
			if st.RaftListen, st.RaftAdvertise, err = raftAddrs(st.Listen, st.Advertise, ""); err != nil {
				return err
			}
		}
		req.Addr, req.RaftAddr = st.Advertise, st.RaftAdvertise
	}
	resp, err = wire.Renew(ctx, cc, req)
	if err != nil {
		return err
	}
	next, err := ca.LoadNodeCertChain(resp.Cert, key, d.pki.rootCerts())
	if err != nil {
		return fmt.Errorf("the renewed certificate: %w", err)
	}
	if next.Identity.Role != d.state.Role {
		// The state goes first, then the certificate: a node that stops
		// in between runs in its new role with the old certificate, and
		// renews it at its next check.
		switch next.Identity.Role {
		case api.RoleManager:
			if len(resp.DataKey) != len(store.DataKey{}) {
				return errors.New("promoted without the cluster's data key")
			}
			d.joinKey = new(store.DataKey)
			copy(d.joinKey[:], resp.DataKey)
			if d.unlockKey, err = unlockKeyOf(resp.UnlockKey); err != nil {
				return fmt.Errorf("promoted: %w", err)
			}
		default:
			// Demoted: this node's replica of the store goes. (It runs
			// tasks if it did; a --no-worker node stays without tasks.)
			if err := os.RemoveAll(raftDir(d.dir)); err != nil {
				return err
			}
		}
		st.Role = next.Identity.Role
		if err := saveRole(d.dir, &st, d.joinKey, d.unlockKey); err != nil {
			return err
		}
	}
	if err := saveNodeCert(d.dir, next); err != nil {
		return err
	}
	d.pki.node.Store(next)
	d.log.Info("certificate renewed", "role", next.Identity.Role, "not_after", next.Identity.NotAfter)
	if next.Identity.Role == d.state.Role {
		return nil
	}
	*d.state = st
	return errRoleChanged
}

// saveNodeCert replaces the node's certificate and key so that a crash
// leaves the old pair or the new one: the new pair goes to one file first
// (loadPKI finishes a swap it finds there), then to the usual two.
func saveNodeCert(dir string, c *ca.NodeCert) error {
	next := filepath.Join(pkiDir(dir), nodeNextFile)
	if err := writeFileAtomic(next, append(append([]byte{}, c.CertPEM()...), c.KeyPEM()...), 0o600); err != nil {
		return err
	}
	return finishCertSwap(dir)
}

// finishCertSwap moves a pending certificate pair into place.
func finishCertSwap(dir string) error {
	next := filepath.Join(pkiDir(dir), nodeNextFile)
	b, err := os.ReadFile(next)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := splitPair(b)
	if err != nil {
		return fmt.Errorf("%s: %w", next, err)
	}
	if err := writeFileAtomic(filepath.Join(pkiDir(dir), nodeKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(pkiDir(dir), nodeCertFile), certPEM, 0o600); err != nil {
		return err
	}
	return os.Remove(next)
}

// admitNode refuses, at the TLS handshake, nodes removed from the cluster.
func (d *daemon) admitNode(id ca.Identity) error {
	s := d.storeRef.Load()
	if s == nil {
		return nil
	}
	var removed bool
	_ = s.View(func(tx store.ReadTx) error {
		n, err := store.Get[api.Node](tx, id.NodeID)
		removed = err == nil && n.Removed()
		return nil
	})
	if removed {
		return fmt.Errorf("node %s was removed from the cluster", id.NodeID)
	}
	return nil
}

// admitRaftPeer lets only members of the Raft configuration speak Raft
// (any manager, while this one's replica is new and knows no members).
func (d *daemon) admitRaftPeer(id ca.Identity) error {
	s := d.storeRef.Load()
	if s == nil {
		return nil
	}
	ms, err := s.Members()
	if err != nil || len(ms) == 0 {
		return nil
	}
	for _, m := range ms {
		if m.ID == id.NodeID {
			return nil
		}
	}
	return fmt.Errorf("manager %s is not a member of the cluster's Raft configuration", id.NodeID)
}

// managersOnly admits forwarded writes from current managers only: the
// peer's verified certificate must say manager, and it must be a member.
func (d *daemon) managersOnly(ctx context.Context) error {
	id, err := peerIdentity(ctx, api.RoleManager)
	if err != nil {
		return err
	}
	return d.admitRaftPeer(id)
}

// peerIdentity is the verified identity of a gRPC call's peer.
func peerIdentity(ctx context.Context, roles ...api.NodeRole) (ca.Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ca.Identity{}, errors.New("no peer information")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		// The handshake verified any certificate shown (ca.TLSConfig).
		return ca.Identity{}, errors.New("no verified client certificate")
	}
	return ca.RequireRole(info.State, roles...)
}

// saveRole records a node's new role. A promoted node keeps the cluster's
// data key first: one that stops before its manager certificate is saved
// restarts as a manager that can open its store, and renews its
// certificate then.
func saveRole(dir string, st *State, key *store.DataKey, unlock *store.UnlockKey) error {
	if st.Role == api.RoleManager && key != nil {
		if err := store.SaveDataKey(raftDir(dir), key, unlock); err != nil {
			return err
		}
	}
	return saveState(dir, st)
}

// recordCert writes on the node the validity of the certificate it showed,
// for gitorc node ls and status to report a node that fails to renew it.
// Best effort: the node checks in again in a few seconds.
func (d *daemon) recordCert(ctx context.Context, id ca.Identity, root string) {
	err := store.RetryConflicts(3, func() error {
		_, err := d.store.Update(ctx, func(tx store.Tx) error {
			n, err := store.Get[api.Node](tx, id.NodeID)
			if err != nil {
				return err
			}
			if n.Status.CertNotAfter.Equal(id.NotAfter) && n.Status.CertNotBefore.Equal(id.NotBefore) && n.Status.CertRoot == root {
				return nil
			}
			n.Status.CertNotBefore, n.Status.CertNotAfter, n.Status.CertRoot = id.NotBefore, id.NotAfter, root
			return tx.Update(n)
		})
		return err
	})
	if err != nil && ctx.Err() == nil {
		d.log.Debug("record a node's certificate", "node", id.NodeID, "err", err)
	}
}

// Renew tells a node its wanted role and, for a CSR, issues its new
// certificate in that role.
func (s joinServer) Renew(ctx context.Context, req *wire.RenewRequest) (*wire.RenewResponse, error) {
	d := s.d
	id, err := peerIdentity(ctx, api.RoleWorker, api.RoleManager)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	role := id.Role
	resp := &wire.RenewResponse{Role: role, Managers: d.managerAddrs()}
	root := d.renewTrust(ctx, resp)
	var node *api.Node
	_ = d.store.View(func(tx store.ReadTx) error {
		node, err = store.Get[api.Node](tx, id.NodeID)
		return nil
	})
	if err == nil {
		if node.Removed() {
			return nil, status.Error(codes.PermissionDenied, "this node was removed from the cluster: join again with a token")
		}
		role = node.Spec.Role
		resp.Role = role
		if !node.Status.CertNotAfter.Equal(id.NotAfter) || !node.Status.CertNotBefore.Equal(id.NotBefore) || node.Status.CertRoot != root {
			d.recordCert(ctx, id, root)
		}
	}
	if len(req.CSR) == 0 {
		return resp, nil
	}
	if role == api.RoleManager && id.Role != api.RoleManager {
		if req.Addr == "" || req.RaftAddr == "" {
			return nil, status.Error(codes.InvalidArgument, "a node becoming a manager must give its API and Raft addresses")
		}
		key, err := d.store.ExportDataKey()
		if err != nil {
			return nil, status.Error(codes.Unavailable, err.Error())
		}
		// Its addresses, for the leader to add it to Raft.
		err = store.RetryConflicts(5, func() error {
			_, err := d.store.Update(ctx, func(tx store.Tx) error {
				n, err := store.Get[api.Node](tx, id.NodeID)
				if err != nil {
					return err
				}
				n.Manager = &api.ManagerStatus{RaftID: id.NodeID, Addr: req.Addr, RaftAddr: req.RaftAddr}
				return tx.Update(n)
			})
			return err
		})
		if err != nil {
			return nil, status.Error(codes.Unavailable, "record the promoted manager: "+err.Error())
		}
		resp.DataKey = key[:]
		if resp.UnlockKey, err = d.clusterKey(keyUnlock); errors.Is(err, errNoClusterKey) {
			resp.UnlockKey, err = nil, nil
		}
		if err != nil {
			return nil, status.Error(codes.Unavailable, err.Error())
		}
	}
	if resp.Cert, err = d.issue(req.CSR, id.NodeID, role); err != nil {
		return nil, err
	}
	d.log.Info("certificate renewed", "node", id.NodeID, "role", role)
	return resp, nil
}
