package api

import "time"

// AdminCert records an admin client certificate the cluster issued (gitorc
// admin-cert issue): its ID is the certificate's serial number (lowercase
// hex). Managers refuse a certificate whose record is revoked, so a
// revocation takes effect on every manager as soon as it is replicated.
// The certificate's key never reaches the cluster.
type AdminCert struct {
	Meta
	Name      string    `json:"name"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// RevokedAt is when the certificate was revoked; zero while it is not.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Revoked reports whether the certificate was revoked.
func (c *AdminCert) Revoked() bool { return !c.RevokedAt.IsZero() }
