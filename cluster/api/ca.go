package api

import "time"

// ClusterCA is the cluster's trust as the store records it: the root
// certificate every node trusts and, while gitorc ca rotate runs, the
// root the nodes move to. Certificates only: the roots' keys are internal
// secrets, encrypted at rest with every other.
type ClusterCA struct {
	// RootCert is the cluster's root certificate (PEM). Empty in a cluster
	// that never rotated its root: every node's own copy is then the one
	// bootstrap made.
	RootCert string `json:"root_cert,omitempty"`
	// Rotation is the rotation in progress, nil when none is.
	Rotation *CARotation `json:"rotation,omitempty"`
	// RotatedAt is when the last rotation ended.
	RotatedAt time.Time `json:"rotated_at,omitzero"`
}

// CARotation is a root rotation in progress: nodes trust both roots and
// renew onto the new one; the new root becomes the cluster's alone when
// every node shows a certificate of it.
type CARotation struct {
	// NewRootCert is the new root certificate (PEM).
	NewRootCert string `json:"new_root_cert"`
	// CrossSigned is the new root's key certified by the current root
	// (PEM): it comes with every certificate the new root issues, for
	// nodes that trust the current root alone.
	CrossSigned string `json:"cross_signed"`
	// Started is when the rotation began.
	Started time.Time `json:"started"`
}
