// Package ca is the cluster's trust: the root certificate authority
// created at bootstrap, the node certificates it issues from certificate
// signing requests (node ID in the CN, role in the OU), the join tokens
// that admit a worker or a manager and pin the CA by its digest, and the
// tls.Config builders for the mutual TLS every node-to-node link uses;
// and the admin client certificates (OU gitorc-admin, client
// authentication only) with which the CLI reaches a manager's control API
// from elsewhere (admin.go). The two kinds never stand in for each other.
// A root is replaced by cross-signing (rotate.go): the old root certifies
// the new one's key, and verifiers take such a certificate, signed by a
// root they trust, as an anchor, so nodes of either root trust each other
// until the cluster trusts the new root alone (TLSConfig.Roots changes at
// each handshake).
//
// Everything is stdlib crypto: ECDSA P-256 keys, x509 certificates, TLS 1.3.
// Time comes from Config.Now (or TLSConfig.Now), so expiry is testable
// without waiting.
//
// Private keys are exposed only as PKCS#8 PEM bytes (RootCA.KeyPEM,
// NodeCert.KeyPEM, NewCSR) for the store to encrypt at rest; types that
// hold a key or a token secret print and log without it.
//
// It imports cluster/api only among gitorc packages (for api.NodeRole);
// never cluster/store, cluster/agent, reconcile or compose. Persisting the
// CA and the tokens is the caller's job.
package ca
