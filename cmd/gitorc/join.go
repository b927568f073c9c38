package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// joinServer issues certificates to nodes that present a join token.
type joinServer struct{ d *daemon }

var _ wire.JoinServer = joinServer{}

// tokens reads the cluster's join tokens from the store.
func (d *daemon) tokens() (ca.JoinTokens, error) {
	t, _, err := d.tokensAndExpiry()
	return t, err
}

// tokenExpiry is when each role's token stops admitting nodes (gitorc
// token --ttl); a role without one never expires, as Swarm's tokens.
type tokenExpiry map[api.NodeRole]time.Time

// tokensAndExpiry reads the join tokens and their expiry: the cluster
// key holds the worker's and the manager's token, then a line
// "expires ROLE RFC3339" for each token with a TTL.
func (d *daemon) tokensAndExpiry() (ca.JoinTokens, tokenExpiry, error) {
	b, err := d.clusterKey(keyTokens)
	if err != nil {
		return ca.JoinTokens{}, nil, err
	}
	return parseTokens(b)
}

// parseTokens reads the join tokens cluster key (tokensText).
func parseTokens(b []byte) (ca.JoinTokens, tokenExpiry, error) {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	damaged := errors.New("the cluster's join tokens are damaged")
	if len(lines) < 2 {
		return ca.JoinTokens{}, nil, damaged
	}
	w, err := ca.ParseToken(strings.TrimSpace(lines[0]))
	if err != nil {
		return ca.JoinTokens{}, nil, err
	}
	m, err := ca.ParseToken(strings.TrimSpace(lines[1]))
	if err != nil {
		return ca.JoinTokens{}, nil, err
	}
	exp := tokenExpiry{}
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "expires" {
			return ca.JoinTokens{}, nil, damaged
		}
		role, err := api.ParseNodeRole(f[1])
		if err != nil {
			return ca.JoinTokens{}, nil, damaged
		}
		at, err := time.Parse(time.RFC3339, f[2])
		if err != nil {
			return ca.JoinTokens{}, nil, damaged
		}
		exp[role] = at
	}
	return ca.JoinTokens{Worker: w, Manager: m}, exp, nil
}

func (d *daemon) saveTokens(ctx context.Context, t ca.JoinTokens, exp tokenExpiry) error {
	return d.setClusterKey(ctx, keyTokens, []byte(tokensText(t, exp)))
}

// tokensText is the join tokens cluster key's content.
func tokensText(t ca.JoinTokens, exp tokenExpiry) string {
	s := t.Worker.Encode() + "\n" + t.Manager.Encode() + "\n"
	for _, role := range []api.NodeRole{api.RoleWorker, api.RoleManager} {
		if at, ok := exp[role]; ok {
			s += fmt.Sprintf("expires %s %s\n", role, at.UTC().Format(time.RFC3339))
		}
	}
	return s
}

func (s joinServer) Join(ctx context.Context, req *wire.JoinRequest) (*wire.JoinResponse, error) {
	d := s.d
	tokens, exp, err := d.tokensAndExpiry()
	if err != nil {
		return nil, status.Error(codes.Unavailable, "this manager cannot admit nodes yet: "+err.Error())
	}
	role, err := tokens.Check(req.Token)
	if err != nil {
		return nil, status.Error(codes.PermissionDenied, "join refused: the token is not this cluster's current token")
	}
	if at, ok := exp[role]; ok && !time.Now().Before(at) {
		return nil, status.Error(codes.PermissionDenied, fmt.Sprintf(
			"join refused: the %s token expired at %s: get a new one with gitorc token %s --rotate", role, at.UTC().Format(time.RFC3339), role))
	}
	if role == api.RoleManager && (req.Addr == "" || req.RaftAddr == "") {
		return nil, status.Error(codes.InvalidArgument, "a joining manager must give its API and Raft addresses")
	}
	id, err := newNodeID()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	cert, err := d.issue(req.CSR, id, role)
	if err != nil {
		return nil, err
	}
	resp := &wire.JoinResponse{NodeID: id, Role: role, Cert: cert, CA: d.pki.caPEM(), Managers: d.managerAddrs()}
	if role == api.RoleManager {
		key, err := d.store.ExportDataKey()
		if err != nil {
			return nil, status.Error(codes.Unavailable, err.Error())
		}
		// The new manager's node, with its addresses: the leader adds it
		// to Raft as a learner, then as a voter once it has caught up.
		n := &api.Node{Meta: api.Meta{ID: id}, Spec: api.NodeSpec{Role: api.RoleManager, Availability: api.AvailabilityActive},
			Description: api.NodeDescription{Hostname: req.Hostname},
			Manager:     &api.ManagerStatus{RaftID: id, Addr: req.Addr, RaftAddr: req.RaftAddr}}
		if req.NoWorker {
			n.Spec.Availability = api.AvailabilityDrain // see registerManager
		}
		if _, err := d.store.Update(ctx, func(tx store.Tx) error { return tx.Create(n) }); err != nil {
			return nil, status.Error(codes.Unavailable, "record the new manager: "+err.Error())
		}
		resp.DataKey = key[:]
		if resp.UnlockKey, err = d.clusterKey(keyUnlock); errors.Is(err, errNoClusterKey) {
			resp.UnlockKey, err = nil, nil
		}
		if err != nil {
			return nil, status.Error(codes.Unavailable, err.Error())
		}
	}
	d.log.Info("node joined", "node", id, "role", role)
	return resp, nil
}

func newJoinCmd() *cobra.Command {
	var f bootstrapFlags
	var token string
	cmd := &cobra.Command{
		Use:   "join --token-file FILE|--token TOKEN MANAGER-ADDR",
		Short: "Join an existing cluster as a worker, or as a manager with a manager token",
		Long: `Asks the manager for this node's certificate with a join token (gitorc token
worker|manager on a manager). The connection trusts only the CA whose digest the token
carries. A manager token makes this node a manager too: it receives the cluster's data
key, copies the store as a Raft learner and becomes a voter once it has caught up.
Then runs the node in the foreground; restart it later with gitorc daemon --data-dir.
Prefer --token-file (- reads standard input): a --token shows in the process list.
` + nodeReportDoc,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := outputFormat(cmd, outText, outText, outJSON); err != nil {
				return err
			}
			tok, err := joinToken(token, f.tokenFile, cmd.InOrStdin())
			if err != nil {
				return err
			}
			d, err := join(cmd.Context(), f, tok, args[0])
			if err != nil {
				return err
			}
			return runDaemon(cmd, d)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&token, "token", "", "join token (GTRC-1-…); prefer --token-file, a --token shows in the process list")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the join token (- for standard input)")
	fl.StringVar(&f.dataDir, "data-dir", DefaultDataDir, "where the node keeps its state")
	fl.StringArrayVar(&f.insecure, "insecure-registry", nil, "registry reached over plain HTTP (host:port)")
	fl.StringVar(&f.listen, "listen", "0.0.0.0:4270", "a manager's API address (manager token only)")
	fl.StringVar(&f.advertise, "advertise", "", "address other nodes reach a manager's API at (default: the listen address, or this host's first address)")
	fl.StringVar(&f.raftListen, "raft-listen", "", "a manager's Raft address (default: the listen port + 1)")
	fl.BoolVar(&f.noWorker, "no-worker", false, "a manager that runs no tasks")
	fl.StringVar(&f.webhookListen, "webhook-listen", "", "a manager serves POST /hooks/{github,gitlab,gitea,generic} on this address (plain HTTP: put a TLS proxy in front); default off")
	fl.StringVar(&f.metricsListen, "metrics-listen", "", metricsListenHelp)
	f.net.add(fl)
	f.timing.add(fl)
	f.policy.add(fl)
	addOutputFlag(cmd)
	return cmd
}

// joinToken is the join token of --token or --token-file (one of them).
func joinToken(token, file string, stdin io.Reader) (string, error) {
	switch {
	case token != "" && file != "":
		return "", errors.New("--token and --token-file: give one")
	case file != "":
		return readSecretFile("--token-file", file, stdin)
	case token == "":
		return "", errors.New("give the join token with --token-file FILE (- for standard input) or --token")
	}
	return strings.TrimSpace(token), nil
}

// join obtains a certificate from a manager and lays the node out.
func join(ctx context.Context, f bootstrapFlags, token, manager string) (*daemon, error) {
	if _, err := os.Stat(stateFile(f.dataDir)); err == nil {
		return nil, fmt.Errorf("%s already holds a node: run gitorc daemon --data-dir %s", f.dataDir, f.dataDir)
	}
	t, err := ca.ParseToken(token)
	if err != nil {
		return nil, err
	}
	cc, err := grpc.NewClient(manager, grpc.WithTransportCredentials(credentials.NewTLS(ca.JoinClientConfig(t, nil))))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	csr, key, err := ca.NewCSR("joining")
	if err != nil {
		return nil, err
	}
	// The token does not say its role; the manager does. So the addresses
	// a manager needs go along in any case.
	req := &wire.JoinRequest{Token: token, CSR: csr, NoWorker: f.noWorker}
	st := &nodeState{Worker: true, Insecure: f.insecure, Listen: f.listen, MetricsListen: f.metricsListen}
	if err := f.net.record(st); err != nil {
		return nil, err
	}
	if err := f.timing.record(nil, st); err != nil {
		return nil, err
	}
	if st.Policy, err = f.policy.policy(); err != nil {
		return nil, err
	}
	if f.listen != "" {
		if st.Advertise, err = advertiseAddr(f.listen, f.advertise); err != nil {
			return nil, err
		}
		if st.RaftListen, st.RaftAdvertise, err = raftAddrs(f.listen, st.Advertise, f.raftListen); err != nil {
			return nil, err
		}
		req.Addr, req.RaftAddr = st.Advertise, st.RaftAdvertise
	}
	req.Hostname, _ = os.Hostname()
	resp, err := wire.Join(ctx, cc, req)
	if err != nil {
		if st, ok := status.FromError(err); ok {
			return nil, fmt.Errorf("join %s: %s", manager, st.Message())
		}
		return nil, fmt.Errorf("join %s: %w", manager, err)
	}
	st.Role = resp.Role
	if st.Role == api.RoleManager {
		st.Worker, st.WebhookListen = !f.noWorker, f.webhookListen
	} else {
		st.Listen, st.Advertise, st.RaftListen, st.RaftAdvertise = "", "", "", ""
	}
	d := &daemon{dir: f.dataDir, state: st}
	if st.Role == api.RoleManager {
		if len(resp.DataKey) != len(store.DataKey{}) {
			return nil, fmt.Errorf("join %s: the manager sent no data key", manager)
		}
		d.joinKey = new(store.DataKey)
		copy(d.joinKey[:], resp.DataKey)
		var err error
		if d.unlockKey, err = unlockKeyOf(resp.UnlockKey); err != nil {
			return nil, fmt.Errorf("join %s: %w", manager, err)
		}
		if err := store.SaveDataKey(raftDir(f.dataDir), d.joinKey, d.unlockKey); err != nil {
			return nil, err
		}
	}
	dir := pkiDir(f.dataDir)
	for name, data := range map[string][]byte{caCertFile: resp.CA, nodeCertFile: resp.Cert, nodeKeyFile: key} {
		if err := writeFileAtomic(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	if d.pki, err = loadPKI(f.dataDir); err != nil {
		return nil, err
	}
	st.ID, st.Managers = resp.NodeID, resp.Managers
	if st.Role == api.RoleManager && !slices.Contains(st.Managers, st.Advertise) {
		st.Managers = append([]string{st.Advertise}, st.Managers...)
	}
	if err := saveState(f.dataDir, st); err != nil {
		return nil, err
	}
	return d, nil
}

// nodeAPI is the node's own side of the control API: its join tokens
// (join.go), admin certificates (admincert.go), unlock key (autolock.go),
// leave (leave.go) and /v1/info (controlmount.go).
type nodeAPI struct{ d *daemon }

var (
	_ controlapi.Tokens     = nodeAPI{}
	_ controlapi.AdminCerts = nodeAPI{}
	_ controlapi.Autolock   = nodeAPI{}
	_ controlapi.Leaver     = nodeAPI{}
)

// Token is GET /v1/tokens/{role} and POST .../rotate, .../ttl.
func (n nodeAPI) Token(ctx context.Context, role api.NodeRole, rotate bool, ttl *time.Duration) (controlapi.TokenReport, error) {
	d := n.d
	t, exp, err := d.tokensAndExpiry()
	if err == nil && (rotate || ttl != nil) {
		if rotate {
			err = t.Rotate(role)
			delete(exp, role)
		}
		if ttl != nil {
			delete(exp, role)
			if *ttl > 0 {
				exp[role] = time.Now().Add(*ttl).Truncate(time.Second)
			}
		}
		if err == nil {
			err = d.saveTokens(ctx, t, exp)
		}
	}
	if err != nil {
		return controlapi.TokenReport{}, unavailable(err)
	}
	rep := controlapi.TokenReport{Role: role.String(), Token: t.Token(role).Encode(), Manager: d.state.Advertise, Rotated: rotate}
	if at, ok := exp[role]; ok {
		at = at.UTC()
		rep.Expires = &at
	}
	return rep, nil
}

func newTokenCmd() *cobra.Command {
	var rotate bool
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "token worker|manager",
		Short: "Print (or rotate) the token that admits a new node",
		Long: `Prints the join token of a role, and the command that joins a node with it.
--ttl D makes the token stop admitting nodes D from now (0: never, the default, as
Swarm's); a rotated token has no TTL unless --ttl is given with --rotate.
With -o json: {"role", "token", "manager" (the address to join at), "rotated", "expires"}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			var setTTL *time.Duration
			if cmd.Flags().Changed("ttl") {
				if ttl < 0 {
					return fmt.Errorf("--ttl %s: must not be negative", ttl)
				}
				setTTL = &ttl
			}
			c, role := newAPIClient(cmd), args[0]
			var out controlapi.TokenReport
			switch {
			case rotate:
				out, err = c.RotateToken(cmd.Context(), role, setTTL)
			case setTTL != nil:
				out, err = c.SetTokenTTL(cmd.Context(), role, ttl)
			default:
				out, err = c.Token(cmd.Context(), role)
			}
			if err != nil {
				return err
			}
			if format == outJSON {
				out.Rotated = rotate
				return writeJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n\nOn the new node:\n  gitorc join --token %s %s\n", out.Token, out.Token, out.Manager)
			if out.Expires != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "\nIt admits nodes until %s.\n", out.Expires.Local().Format(time.RFC1123))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "replace the token: the old one stops working")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "the token stops admitting nodes this long from now (0: never)")
	addOutputFlag(cmd)
	return cmd
}
