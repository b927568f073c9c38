package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/gitorc/gitorc/cluster/store"
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

// join obtains a certificate from a manager and lays the node out.
func join(ctx context.Context, dataDir string, j *Join) (*daemon, error) {
	token, manager := j.Token, j.Manager
	if _, err := os.Stat(stateFile(dataDir)); err == nil {
		return nil, fmt.Errorf("%s already holds a node: run gitorc daemon --data-dir %s", dataDir, dataDir)
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
	req := &wire.JoinRequest{Token: token, CSR: csr, NoWorker: j.NoWorker}
	st := &State{Worker: true, Insecure: j.InsecureRegistries, Listen: j.Listen, MetricsListen: j.MetricsListen}
	j.Settings.keep(st)
	if j.Listen != "" {
		if st.Advertise, err = advertiseAddr(j.Listen, j.Advertise); err != nil {
			return nil, err
		}
		if st.RaftListen, st.RaftAdvertise, err = raftAddrs(j.Listen, st.Advertise, j.RaftListen); err != nil {
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
		st.Worker, st.WebhookListen = !j.NoWorker, j.WebhookListen
	} else {
		st.Listen, st.Advertise, st.RaftListen, st.RaftAdvertise = "", "", "", ""
	}
	d := &daemon{dir: dataDir, state: st}
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
		if err := store.SaveDataKey(raftDir(dataDir), d.joinKey, d.unlockKey); err != nil {
			return nil, err
		}
	}
	dir := pkiDir(dataDir)
	for name, data := range map[string][]byte{caCertFile: resp.CA, nodeCertFile: resp.Cert, nodeKeyFile: key} {
		if err := writeFileAtomic(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	if d.pki, err = loadPKI(dataDir); err != nil {
		return nil, err
	}
	st.ID, st.Managers = resp.NodeID, resp.Managers
	if st.Role == api.RoleManager && !slices.Contains(st.Managers, st.Advertise) {
		st.Managers = append([]string{st.Advertise}, st.Managers...)
	}
	if err := saveState(dataDir, st); err != nil {
		return nil, err
	}
	return d, nil
}

// nodeAPI is the node's own side of the control API: its join tokens
// (join.go), admin certificates (admincert.go), unlock key (autolock.go),
// leave (leave.go) and /v1/info (controlmount.go).
type nodeAPI struct{ d *daemon }
