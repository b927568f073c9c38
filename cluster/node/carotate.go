package node

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/gitorc/gitorc/cluster/store"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Root CA rotation (gitorc ca rotate), as docker swarm ca --rotate.
//
// The leader makes a new root, and the current root certifies the new
// root's key (the cross-signed certificate). The new root's key is a
// cluster key in the store (keyCANext), sealed like the current one's;
// the certificates are on the cluster object (api.ClusterCA). From then
// on, every node is told at its next check-in (Renew, every few seconds)
// to trust both roots, and renews onto a certificate of the new root,
// which managers issue with the cross-signed certificate after it: a node
// that trusts the old root alone verifies it through that (cluster/ca's
// rotate.go). Nothing restarts: the certificate is swapped in place as at
// any renewal, and every TLS configuration reads the roots at each
// handshake. Each check-in records on the node the root of the
// certificate it showed (Status.CertRoot); once every node not removed
// shows one of the new root — a node that is down holds the rotation
// until it is back or removed, as in Swarm — the leader makes the new
// root the cluster's alone, in one transaction: its key replaces the
// current one, and the join tokens get new secrets pinning the new root
// (their expiry, if any, carries over). Nodes then trust the new root
// alone, at their next check-in, and refuse certificates of the old one:
// node certificates, and admin certificates issued before the rotation,
// which stop working (the operator issues new ones with gitorc admin-cert
// issue; gitorc ca rotate says so). Admin certificates issued during the
// rotation are the new root's and keep working.

// keyCANext is the cluster key holding the new root's key while a
// rotation runs.
const keyCANext = "gitorc-internal-ca-key-next"

// trustRoots are the root certificates a node trusts: the cluster's, and
// the new one during a rotation.
type trustRoots struct {
	pem   []byte
	certs []*x509.Certificate
}

// caPEM returns the roots the node trusts, in PEM (what ca.pem holds).
func (p *pki) caPEM() []byte { return p.roots.Load().pem }

// rootCerts returns the roots the node trusts.
func (p *pki) rootCerts() []*x509.Certificate { return p.roots.Load().certs }

// setRoots makes the node trust the roots of a PEM bundle.
func (p *pki) setRoots(b []byte) error {
	certs, err := ca.ParseCertificatesPEM(b)
	if err != nil {
		return err
	}
	for _, c := range certs {
		if !c.IsCA {
			return fmt.Errorf("%w: %s is not a CA certificate", ca.ErrInvalidCert, c.Subject)
		}
	}
	p.roots.Store(&trustRoots{pem: ca.EncodeCertificatesPEM(certs...), certs: certs})
	return nil
}

// caState is the cluster's trust as this manager's replica has it.
type caState struct {
	root  *x509.Certificate
	rot   *api.CARotation
	next  *x509.Certificate // the new root, during a rotation
	cross *x509.Certificate // next certified by root
	// rotatedAt is when the last rotation ended.
	rotatedAt time.Time
}

// readCA reads the cluster's trust: a cluster that never rotated has no
// CA on its cluster object, and its root is the one every node has.
func (d *daemon) readCA(tx store.ReadTx) (caState, error) {
	cl, err := store.Get[api.Cluster](tx, api.ClusterID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return caState{}, err
	}
	var st caState
	if cl == nil || cl.CA == nil || cl.CA.RootCert == "" {
		st.root = d.pki.rootCerts()[0]
		return st, nil
	}
	if st.root, err = ca.ParseCertificatePEM([]byte(cl.CA.RootCert)); err != nil {
		return caState{}, fmt.Errorf("the cluster object's ca.root_cert: %w", err)
	}
	st.rotatedAt = cl.CA.RotatedAt
	if r := cl.CA.Rotation; r != nil {
		st.rot = r
		if st.next, err = ca.ParseCertificatePEM([]byte(r.NewRootCert)); err != nil {
			return caState{}, fmt.Errorf("the cluster object's ca.rotation.new_root_cert: %w", err)
		}
		if st.cross, err = ca.ParseCertificatePEM([]byte(r.CrossSigned)); err != nil {
			return caState{}, fmt.Errorf("the cluster object's ca.rotation.cross_signed: %w", err)
		}
	}
	return st, nil
}

func (d *daemon) currentCA() (st caState, err error) {
	err = d.store.View(func(tx store.ReadTx) error {
		st, err = d.readCA(tx)
		return err
	})
	return st, err
}

// roots are what nodes are to trust.
func (s caState) roots() []*x509.Certificate {
	if s.next != nil {
		return []*x509.Certificate{s.root, s.next}
	}
	return []*x509.Certificate{s.root}
}

// rootOf is the digest of the root of the cluster's (or the new one)
// that signed a node's certificate, "" for neither.
func (s caState) rootOf(leaf *x509.Certificate) string {
	for _, r := range s.roots() {
		if ca.SignedBy(leaf, r) {
			return ca.DigestOf(r).String()
		}
	}
	return ""
}

// signer is the root that issues certificates now (the new one during a
// rotation) and the certificates that go with what it issues.
type signer struct {
	root  *ca.RootCA
	chain []byte
}

// signer loads the issuing root and its key from the store.
func (d *daemon) signer() (signer, error) {
	var st caState
	var key []byte
	err := d.store.View(func(tx store.ReadTx) error {
		var err error
		if st, err = d.readCA(tx); err != nil {
			return err
		}
		name := keyCA
		if st.rot != nil {
			name = keyCANext
		}
		s, err := findSecret(tx, name)
		if err != nil {
			return err
		}
		if s == nil {
			return fmt.Errorf("the cluster's %s: %w", name, errNoClusterKey)
		}
		key = []byte(s.Spec.Data.Reveal())
		return nil
	})
	if err != nil {
		return signer{}, err
	}
	cert := st.root
	if st.rot != nil {
		cert = st.next
	}
	root, err := ca.LoadRootCA(ca.DefaultConfig(), ca.EncodeCertificatesPEM(cert), key)
	if err != nil {
		return signer{}, err
	}
	sg := signer{root: root}
	if st.rot != nil {
		sg.chain = ca.EncodeCertificatesPEM(st.cross)
	}
	return sg, nil
}

// peerLeaf is the certificate a gRPC call's peer showed (verified by the
// handshake).
func peerLeaf(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return nil
	}
	return info.State.PeerCertificates[0]
}

// renewTrust fills in what a node checking in is to trust, and returns
// the digest of the root of the certificate it showed.
func (d *daemon) renewTrust(ctx context.Context, resp *wire.RenewResponse) string {
	st, err := d.currentCA()
	if err != nil {
		return ""
	}
	resp.Roots = ca.EncodeCertificatesPEM(st.roots()...)
	if st.next != nil {
		resp.RotateTo = ca.EncodeCertificatesPEM(st.next)
	}
	return st.rootOf(peerLeaf(ctx))
}

// followRoots makes this node trust the roots a manager sent (a rotation
// began or ended): on disk first, then in memory, and its certificate
// presents them from then on. It reports whether the certificate is one
// of rotateTo's (PEM; true when no rotation runs).
func (d *daemon) followRoots(rootsPEM, rotateTo []byte) (onNext bool, err error) {
	onNext = true
	if len(rotateTo) > 0 {
		next, err := ca.ParseCertificatePEM(rotateTo)
		if err != nil {
			return false, fmt.Errorf("the new root a manager sent: %w", err)
		}
		onNext = ca.SignedBy(d.pki.current().Leaf, next)
	}
	if len(rootsPEM) == 0 {
		return onNext, nil // a manager that does not rotate roots
	}
	certs, err := ca.ParseCertificatesPEM(rootsPEM)
	if err != nil {
		return onNext, fmt.Errorf("the roots a manager sent: %w", err)
	}
	if bytes.Equal(ca.EncodeCertificatesPEM(certs...), d.pki.caPEM()) {
		return onNext, nil
	}
	norm := ca.EncodeCertificatesPEM(certs...)
	if err := writeFileAtomic(filepath.Join(pkiDir(d.dir), caCertFile), norm, 0o600); err != nil {
		return onNext, err
	}
	if err := d.pki.setRoots(norm); err != nil {
		return onNext, err
	}
	cur, err := d.pki.current().WithRoots(d.pki.rootCerts())
	if err != nil {
		return onNext, err
	}
	d.pki.node.Store(cur)
	var digests []string
	for _, c := range certs {
		digests = append(digests, ca.DigestOf(c).String())
	}
	d.log.Info("trusted roots changed", "roots", strings.Join(digests, ","))
	return onNext, nil
}

// caRotations ends the rotation in progress once every node shows a
// certificate of the new root, while this manager leads.
func (d *daemon) caRotations(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		rep, err := d.caReport()
		if err != nil || rep.Rotation == nil || len(rep.Rotation.Pending) > 0 {
			continue
		}
		if err := d.finishRotation(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("end the root rotation", "err", err)
		}
	}
}

// startRotation makes a new root and starts moving the cluster onto it;
// it reports false if a rotation runs already.
func (d *daemon) startRotation(ctx context.Context) (bool, error) {
	st, err := d.currentCA()
	if err != nil {
		return false, err
	}
	if st.rot != nil {
		return false, nil
	}
	curKey, err := d.clusterKey(keyCA)
	if err != nil {
		return false, err
	}
	cur, err := ca.LoadRootCA(ca.DefaultConfig(), ca.EncodeCertificatesPEM(st.root), curKey)
	if err != nil {
		return false, err
	}
	next, err := ca.NewRootCA(ca.DefaultConfig())
	if err != nil {
		return false, err
	}
	cross, err := cur.CrossSign(next.Certificate())
	if err != nil {
		return false, err
	}
	started := true
	_, err = d.store.Update(ctx, func(tx store.Tx) error {
		cl, err := store.Get[api.Cluster](tx, api.ClusterID)
		if errors.Is(err, store.ErrNotFound) {
			// The leader records it (with the address plan) as it starts.
			return errors.New("the cluster object is not recorded yet: try again in a moment")
		}
		if err != nil {
			return fmt.Errorf("the cluster object: %w", err)
		}
		if cl.CA != nil && cl.CA.Rotation != nil {
			started = false
			return nil
		}
		s, err := findSecret(tx, keyCANext)
		if err != nil {
			return err
		}
		if s == nil {
			err = tx.Create(&api.Secret{Spec: api.SecretSpec{Name: keyCANext,
				Labels: map[string]string{api.LabelInternal: "true"}, Data: api.SecretBytes(next.KeyPEM())}})
		} else {
			s.Spec.Data = api.SecretBytes(next.KeyPEM())
			err = tx.Update(s)
		}
		if err != nil {
			return err
		}
		c := &api.ClusterCA{RootCert: string(ca.EncodeCertificatesPEM(st.root)),
			Rotation: &api.CARotation{NewRootCert: string(next.CertPEM()), CrossSigned: string(cross), Started: time.Now().UTC()}}
		if cl.CA != nil {
			c.RotatedAt = cl.CA.RotatedAt
		}
		cl.CA = c
		return tx.Update(cl)
	})
	if err != nil {
		return false, fmt.Errorf("start the root rotation: %w", err)
	}
	if started {
		d.log.Info("root rotation started", "from", cur.Digest(), "to", next.Digest())
	}
	return started, nil
}

// finishRotation makes the new root the cluster's alone.
func (d *daemon) finishRotation(ctx context.Context) error {
	var to string
	_, err := d.store.Update(ctx, func(tx store.Tx) error {
		to = ""
		cl, err := store.Get[api.Cluster](tx, api.ClusterID)
		if err != nil {
			return err
		}
		if cl.CA == nil || cl.CA.Rotation == nil {
			return nil
		}
		next, err := ca.ParseCertificatePEM([]byte(cl.CA.Rotation.NewRootCert))
		if err != nil {
			return err
		}
		keys := map[string]*api.Secret{}
		for _, name := range []string{keyCA, keyCANext, keyTokens} {
			s, err := findSecret(tx, name)
			if err != nil {
				return err
			}
			if s == nil {
				return fmt.Errorf("the cluster's %s: %w", name, errNoClusterKey)
			}
			keys[name] = s
		}
		_, exp, err := parseTokens([]byte(keys[keyTokens].Spec.Data.Reveal()))
		if err != nil {
			return err
		}
		tokens, err := ca.NewJoinTokens(ca.DigestOf(next))
		if err != nil {
			return err
		}
		keys[keyTokens].Spec.Data = api.SecretBytes(tokensText(tokens, exp))
		keys[keyCA].Spec.Data = keys[keyCANext].Spec.Data
		for _, name := range []string{keyCA, keyTokens} {
			if err := tx.Update(keys[name]); err != nil {
				return err
			}
		}
		if err := tx.Delete(store.KindSecret, keys[keyCANext].ID, keys[keyCANext].Version); err != nil {
			return err
		}
		cl.CA = &api.ClusterCA{RootCert: cl.CA.Rotation.NewRootCert, RotatedAt: time.Now().UTC()}
		to = ca.DigestOf(next).String()
		return tx.Update(cl)
	})
	if err == nil && to != "" {
		d.log.Info("root rotation done: the cluster trusts the new root alone", "root", to)
	}
	return err
}

func (d *daemon) caReport() (controlapi.CAReport, error) {
	var rep controlapi.CAReport
	err := d.store.View(func(tx store.ReadTx) error {
		st, err := d.readCA(tx)
		if err != nil {
			return err
		}
		rep = controlapi.CAReport{Root: ca.DigestOf(st.root).String(), RootNotAfter: st.root.NotAfter.UTC(), RotatedAt: st.rotatedAt}
		if st.rot == nil {
			return nil
		}
		want := ca.DigestOf(st.next).String()
		r := &controlapi.RotationReport{NewRoot: want, Started: st.rot.Started, Pending: []controlapi.PendingNode{}}
		nodes, err := store.Find[api.Node](tx, store.All())
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if n.Removed() {
				continue
			}
			r.Nodes++
			if n.Status.CertRoot == want {
				r.Done++
				continue
			}
			r.Pending = append(r.Pending, controlapi.PendingNode{ID: n.ID, Hostname: n.Description.Hostname,
				Role: n.Spec.Role.String(), State: n.Status.State.String()})
		}
		slices.SortFunc(r.Pending, func(a, b controlapi.PendingNode) int { return strings.Compare(a.ID, b.ID) })
		rep.Rotation = r
		return nil
	})
	return rep, err
}

// CA is GET /v1/ca: the cluster's root and a rotation in progress.
func (n nodeAPI) CA(context.Context) (controlapi.CAReport, error) {
	rep, err := n.d.caReport()
	if err != nil {
		return rep, unavailable(err)
	}
	return rep, nil
}

// RotateCA is POST /v1/ca/rotate: it starts a root rotation unless one
// runs already (Started says which).
func (n nodeAPI) RotateCA(ctx context.Context) (controlapi.CAReport, error) {
	started, err := n.d.startRotation(ctx)
	if err != nil {
		return controlapi.CAReport{}, unavailable(err)
	}
	rep, err := n.d.caReport()
	if err != nil {
		return rep, unavailable(err)
	}
	rep.Started = &started
	return rep, nil
}
