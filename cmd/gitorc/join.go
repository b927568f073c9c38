package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

func init() {
	register(newJoinCmd)
	register(newTokenCmd)
	controlMounts = append(controlMounts, mountTokens)
}

// joinServer issues certificates to nodes that present a join token.
type joinServer struct{ d *daemon }

var _ wire.JoinServer = joinServer{}

// tokens reads the cluster's join tokens from the store.
func (d *daemon) tokens() (ca.JoinTokens, error) {
	b, err := d.clusterKey(keyTokens)
	if err != nil {
		return ca.JoinTokens{}, err
	}
	lines := strings.Fields(string(b))
	if len(lines) != 2 {
		return ca.JoinTokens{}, errors.New("the cluster's join tokens are damaged")
	}
	w, err := ca.ParseToken(lines[0])
	if err != nil {
		return ca.JoinTokens{}, err
	}
	m, err := ca.ParseToken(lines[1])
	if err != nil {
		return ca.JoinTokens{}, err
	}
	return ca.JoinTokens{Worker: w, Manager: m}, nil
}

func (d *daemon) saveTokens(ctx context.Context, t ca.JoinTokens) error {
	return d.setClusterKey(ctx, keyTokens, []byte(t.Worker.Encode()+"\n"+t.Manager.Encode()+"\n"))
}

func (s joinServer) Join(ctx context.Context, req *wire.JoinRequest) (*wire.JoinResponse, error) {
	d := s.d
	tokens, err := d.tokens()
	if err != nil {
		return nil, status.Error(codes.Unavailable, "this manager cannot admit nodes yet: "+err.Error())
	}
	role, err := tokens.Check(req.Token)
	if err != nil {
		return nil, status.Error(codes.PermissionDenied, "join refused: the token is not this cluster's current token")
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
	resp := &wire.JoinResponse{NodeID: id, Role: role, Cert: cert, CA: d.pki.caCert, Managers: d.managerAddrs()}
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
	}
	d.log.Info("node joined", "node", id, "role", role)
	return resp, nil
}

func newJoinCmd() *cobra.Command {
	var f bootstrapFlags
	var token string
	cmd := &cobra.Command{
		Use:   "join --token TOKEN MANAGER-ADDR",
		Short: "Join an existing cluster as a worker, or as a manager with a manager token",
		Long: `Asks the manager for this node's certificate with a join token (gitorc token
worker|manager on a manager). The connection trusts only the CA whose digest the token
carries. A manager token makes this node a manager too: it receives the cluster's data
key, copies the store as a Raft learner and becomes a voter once it has caught up.
Then runs the node in the foreground; restart it later with gitorc daemon --data-dir.
` + nodeReportDoc,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := outputFormat(cmd, outText, outText, outJSON); err != nil {
				return err
			}
			d, err := join(cmd.Context(), f, token, args[0])
			if err != nil {
				return err
			}
			return runDaemon(cmd, d)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&token, "token", "", "join token (GTRC-1-…)")
	fl.StringVar(&f.dataDir, "data-dir", DefaultDataDir, "where the node keeps its state")
	fl.StringArrayVar(&f.insecure, "insecure-registry", nil, "registry reached over plain HTTP (host:port)")
	fl.StringVar(&f.listen, "listen", "0.0.0.0:4270", "a manager's API address (manager token only)")
	fl.StringVar(&f.advertise, "advertise", "", "address other nodes reach a manager's API at (default: the listen address, or this host's first address)")
	fl.StringVar(&f.raftListen, "raft-listen", "", "a manager's Raft address (default: the listen port + 1)")
	fl.BoolVar(&f.noWorker, "no-worker", false, "a manager that runs no tasks")
	fl.StringVar(&f.webhookListen, "webhook-listen", "", "a manager serves POST /hooks/{github,gitlab,gitea,generic} on this address (plain HTTP: put a TLS proxy in front); default off")
	fl.StringVar(&f.metricsListen, "metrics-listen", "", metricsListenHelp)
	f.net.add(fl)
	f.policy.add(fl)
	addOutputFlag(cmd)
	_ = cmd.MarkFlagRequired("token")
	return cmd
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
		if err := store.SaveDataKey(raftDir(f.dataDir), d.joinKey); err != nil {
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

// mountTokens serves the join tokens on the control socket (root only).
func mountTokens(d *daemon, mux *http.ServeMux) {
	get := func(w http.ResponseWriter, r *http.Request, rotate bool) {
		role, err := api.ParseNodeRole(r.PathValue("role"))
		if err != nil {
			writeJSONResponse(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		t, err := d.tokens()
		if err == nil && rotate {
			if err = t.Rotate(role); err == nil {
				err = d.saveTokens(r.Context(), t)
			}
		}
		if err != nil {
			writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		writeJSONResponse(w, http.StatusOK, map[string]string{"role": role.String(), "token": t.Token(role).Encode(), "manager": d.state.Advertise})
	}
	mux.HandleFunc("GET /v1/tokens/{role}", func(w http.ResponseWriter, r *http.Request) { get(w, r, false) })
	mux.HandleFunc("POST /v1/tokens/{role}/rotate", func(w http.ResponseWriter, r *http.Request) { get(w, r, true) })
}

// tokenReport is gitorc token -o json, as GET /v1/tokens/{role} answers:
// the role the token admits, the token, and the address of the manager
// that answered, for gitorc join. Rotated says the old token stopped
// working.
type tokenReport struct {
	Role    string `json:"role"`
	Token   string `json:"token"`
	Manager string `json:"manager"`
	Rotated bool   `json:"rotated"`
}

func newTokenCmd() *cobra.Command {
	var rotate bool
	cmd := &cobra.Command{
		Use:   "token worker|manager",
		Short: "Print (or rotate) the token that admits a new node",
		Long: `Prints the join token of a role, and the command that joins a node with it.
With -o json: {"role", "token", "manager" (the address to join at), "rotated"}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			method, path := http.MethodGet, "/v1/tokens/"+args[0]
			if rotate {
				method, path = http.MethodPost, path+"/rotate"
			}
			var out tokenReport
			if err := newAPIClient(cmd).call(cmd.Context(), method, path, nil, &out); err != nil {
				return err
			}
			if format == outJSON {
				out.Rotated = rotate
				return writeJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n\nOn the new node:\n  gitorc join --token %s %s\n", out.Token, out.Token, out.Manager)
			return nil
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "replace the token: the old one stops working")
	addOutputFlag(cmd)
	return cmd
}
