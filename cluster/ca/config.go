package ca

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of Config.
const (
	DefaultOrganization = "gitorc"
	DefaultRootValidity = 20 * 365 * 24 * time.Hour
	DefaultCertValidity = 90 * 24 * time.Hour
	// ClockSkew back-dates NotBefore so that nodes whose clocks lag a
	// little accept a certificate issued a moment ago.
	ClockSkew = 5 * time.Minute
)

// Config shapes a RootCA.
type Config struct {
	// Organization goes in the O of every certificate (the cluster ID).
	Organization string
	// RootValidity is the lifetime of a new root certificate.
	RootValidity time.Duration
	// CertValidity is the lifetime of a node certificate.
	CertValidity time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{Organization: DefaultOrganization, RootValidity: DefaultRootValidity,
		CertValidity: DefaultCertValidity, Now: time.Now}
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Organization == "" {
		c.Organization = d.Organization
	}
	if c.RootValidity == 0 {
		c.RootValidity = d.RootValidity
	}
	if c.CertValidity == 0 {
		c.CertValidity = d.CertValidity
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	return c
}

// Validate checks the config after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.RootValidity < time.Hour {
		errs = append(errs, fmt.Errorf("root validity %s is shorter than an hour", c.RootValidity))
	}
	if c.CertValidity < time.Hour {
		errs = append(errs, fmt.Errorf("certificate validity %s is shorter than an hour", c.CertValidity))
	}
	if c.CertValidity > c.RootValidity {
		errs = append(errs, fmt.Errorf("certificate validity %s exceeds root validity %s", c.CertValidity, c.RootValidity))
	}
	return errors.Join(errs...)
}
