package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/reconcile/gitsource"
)

// Settings are what bootstrap and join are told about the node itself;
// node.json keeps them, so a restart needs none of them again.
type Settings struct {
	// Listen is the node's API (workers' sessions, admins' control API):
	// a manager's; a worker that joins as one needs it too.
	Listen string
	// Advertise is where other nodes reach Listen (default: Listen, or
	// this host's first address when Listen is unspecified).
	Advertise string
	// RaftListen is the managers' Raft transport (default: Listen's
	// port + 1).
	RaftListen string
	// NoWorker: the node runs no tasks.
	NoWorker bool
	// InsecureRegistries are reached over plain HTTP (host:port).
	InsecureRegistries []string
	// WebhookListen, MetricsListen and UIListen are where the node
	// serves webhooks, GET /metrics and the status page (empty: off).
	WebhookListen, MetricsListen, UIListen string
	// WireGuardPort is the overlay's UDP port (0: netplane's default).
	WireGuardPort uint16
	// DNSUpstreams are host:port resolvers for names outside the
	// cluster (none: the host's /etc/resolv.conf when the node starts).
	DNSUpstreams []string
	// Timing is fault detection (zero: the defaults).
	Timing Timing
	// Policy is what containers may have beyond the defaults (nil: the
	// defaults).
	Policy *api.NodePolicy
}

// keep writes the settings that go to node.json as they are given.
func (s *Settings) keep(st *State) {
	st.WireGuardPort, st.DNSUpstreams = s.WireGuardPort, s.DNSUpstreams
	if s.Timing != (Timing{}) {
		t := s.Timing
		st.Timing = &t
	}
	st.Policy = s.Policy
}

// Bootstrap creates a new cluster whose first manager the node is.
type Bootstrap struct {
	Settings
	// Source is the Git source the cluster follows (nil: none yet); a
	// local path is made absolute.
	Source *api.SourceSpec
	// Network is the cluster's address plan.
	Network api.NetworkConfig
	// WebhookSecret is the webhooks' shared secret; GitUsername and
	// GitPassword the source's https credentials. They stay in memory
	// until the new store holds them, sealed.
	WebhookSecret api.SecretBytes
	GitUsername   string
	GitPassword   api.SecretBytes
	// Autolock seals managers' data keys by an unlock key, which
	// Node.UnlockKey gives this once; UnlockKeyInReport puts it in the
	// report Config.Up is given instead (bootstrap -o json prints it there).
	Autolock, UnlockKeyInReport bool
}

// Join joins the node to a cluster, as a worker or a manager: the token
// says which.
type Join struct {
	Settings
	Token   string
	Manager string // a manager's API address
}

// Config says which node to run and how it comes to be: Bootstrap or
// Join lay a new node out in DataDir; neither runs the one there.
type Config struct {
	DataDir   string
	Bootstrap *Bootstrap
	Join      *Join
	// Change, for a node that restarts, changes the settings it kept
	// before it starts (gitorc daemon's flags); it says whether it
	// changed any, and node.json is written then.
	Change func(*State) (bool, error)
	// Logger is where the node logs (default: standard error, info).
	Logger *slog.Logger
	// Up, if set, is called once, with the node's report, when the node
	// first serves its control socket.
	Up func(Report)
}

// Validate checks the config before anything is written.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("no data dir")
	}
	if c.Bootstrap != nil && c.Join != nil {
		return errors.New("bootstrap or join: not both")
	}
	var s *Settings
	switch {
	case c.Bootstrap != nil:
		s = &c.Bootstrap.Settings
		if c.Bootstrap.Listen == "" {
			return errors.New("--listen: a manager needs its API address")
		}
		if src := c.Bootstrap.Source; src != nil {
			if err := gitsource.RefuseURLCredentials("--repo", src.URL); err != nil {
				return err
			}
			if c.Bootstrap.GitPassword != nil && !gitsource.IsHTTPURL(src.URL) {
				return errors.New("--git-password-file: only for an https --repo")
			}
		} else if c.Bootstrap.GitPassword != nil {
			return errors.New("--git-password-file: only for an https --repo")
		}
	case c.Join != nil:
		s = &c.Join.Settings
		if c.Join.Token == "" || c.Join.Manager == "" {
			return errors.New("join: give the token and a manager's address")
		}
	case c.Change == nil:
		if _, err := os.Stat(stateFile(c.DataDir)); err != nil {
			return fmt.Errorf("%s holds no node: bootstrap or join first (%w)", c.DataDir, err)
		}
	}
	if s != nil {
		if err := s.Timing.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Node is one gitorc node: a manager (store, controllers, dispatcher,
// control API) and, unless told otherwise, a worker (agent, executor,
// network plane) whose session goes to the managers like any other
// worker's.
type Node struct{ d *daemon }

// New lays out or opens the node that cfg says; Run runs it.
func New(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var d *daemon
	var err error
	switch {
	case cfg.Bootstrap != nil:
		d, err = bootstrap(cfg.DataDir, cfg.Bootstrap)
	case cfg.Join != nil:
		d, err = join(ctx, cfg.DataDir, cfg.Join)
	default:
		d, err = open(cfg.DataDir, cfg.Change)
	}
	if err != nil {
		return nil, err
	}
	d.log = cfg.Logger
	if d.log == nil {
		d.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if cfg.Up != nil {
		d.up = func() { cfg.Up(d.report()) }
	}
	return &Node{d: d}, nil
}

// open reads a node's data dir, changing its kept settings first.
func open(dir string, change func(*State) (bool, error)) (*daemon, error) {
	st, err := loadState(dir)
	if err != nil {
		return nil, err
	}
	if change != nil {
		changed, err := change(st)
		if err != nil {
			return nil, err
		}
		if err := st.timing().Validate(); err != nil {
			return nil, err
		}
		if changed {
			if err := saveState(dir, st); err != nil {
				return nil, err
			}
		}
	}
	p, err := loadPKI(dir)
	if err != nil {
		return nil, err
	}
	return &daemon{dir: dir, state: st, pki: p}, nil
}

// Run serves until ctx ends (or the node leaves the cluster, then its
// state is deleted), in whatever role the cluster gives the node.
func (n *Node) Run(ctx context.Context) error { return n.d.run(ctx) }

// Report is who the node is and where it is reached.
func (n *Node) Report() Report { return n.d.report() }

// UnlockKey is bootstrap's unlock key with Autolock, to be shown once
// (empty otherwise).
func (n *Node) UnlockKey() string {
	if n.d.unlockKey == nil {
		return ""
	}
	return n.d.unlockKey.Encode()
}

// Socket is the control socket of the node in dir.
func Socket(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return socketFile(dir)
}
