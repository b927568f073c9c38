package cni

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"

	"github.com/gitorc/gitorc/netplane/netns"
)

// Defaults of Config.
const (
	DefaultMTU = 1420
)

// DefaultPluginDirs are where Debian's containernetworking-plugins (first)
// and the upstream release tarballs install the plugins.
var DefaultPluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// plugins are the CNI plugins an attachment executes.
var plugins = []string{"ptp", "static"}

// Limits of Config.MTU (IPv4's minimum; the largest a veth takes).
const (
	minMTU = 576
	maxMTU = 65535
)

// Config configures an Attacher.
type Config struct {
	// NS is the node's network namespace, where the host ends of the veth
	// pairs live; the plugins are executed from it. The zero NS is the
	// process's own.
	NS netns.NS
	// PluginDirs are searched in order for the plugins (default
	// DefaultPluginDirs).
	PluginDirs []string
	// CacheDir holds the CNI cache of this node's attachments (required,
	// absolute): one node's, never the host-wide /var/lib/cni.
	CacheDir string
	// MTU of the tasks' interfaces (default DefaultMTU).
	MTU    int
	Logger *slog.Logger
}

// Validate checks the configuration, and that the plugins are installed.
func (c *Config) Validate() error {
	var errs []error
	if c.CacheDir == "" || !filepath.IsAbs(c.CacheDir) {
		errs = append(errs, fmt.Errorf("cache dir %q must be an absolute path", c.CacheDir))
	}
	if c.MTU != 0 && (c.MTU < minMTU || c.MTU > maxMTU) {
		errs = append(errs, fmt.Errorf("mtu %d is out of range [%d, %d]", c.MTU, minMTU, maxMTU))
	}
	dirs := c.pluginDirs()
	for _, p := range plugins {
		if _, err := invoke.FindInPath(p, dirs); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s is in none of %s: install containernetworking-plugins (Debian: apt-get install containernetworking-plugins)",
				ErrPluginNotFound, p, strings.Join(dirs, ", ")))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cni config: %w", err)
	}
	return nil
}

func (c *Config) pluginDirs() []string {
	if len(c.PluginDirs) == 0 {
		return DefaultPluginDirs
	}
	return c.PluginDirs
}

func (c *Config) withDefaults() Config {
	d := *c
	d.PluginDirs = append([]string(nil), c.pluginDirs()...)
	if d.MTU == 0 {
		d.MTU = DefaultMTU
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return d
}
