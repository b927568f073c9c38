package node

import (
	"context"
	"net/http"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/server"
	"github.com/gitorc/gitorc/reconcile/storecluster"
)

// controlAPI is a manager's control API (cluster/controlapi), built once
// for the socket and the API port to share (the diff handler keeps a
// clone of the source, one per node): the store, and what the node
// serves through it, each through an interface controlapi declares.
func (d *daemon) controlAPI() http.Handler {
	hash := func(ctx context.Context, plain []byte) (string, error) {
		ident, err := d.identity(ctx)
		if err != nil {
			return "", err
		}
		return ident.Hash(api.SecretBytes(plain)), nil
	}
	cl := storecluster.New(d.store)
	node := nodeAPI{d: d}
	mux := http.NewServeMux()
	// Register fails only without a store, which a manager always has.
	if err := server.Register(mux, server.Config{Store: d.store, Logger: d.log, HashSecret: hash,
		Leader: func() string { return d.store.Leader().ID }, Logs: d.logsStreamer(),
		Info: node.info, Syncer: syncAPI{d: d, cl: cl}, Differ: &differ{d: d}, Stacks: stacksAPI{d: d, cl: cl},
		Tokens: node, AdminCerts: node, Autolock: node, CA: node}); err != nil {
		panic(err)
	}
	return mux
}

// info is GET /v1/info: this node, its role, the leader, and the
// cluster's age recipient (gitorc seal) when the identity can be read.
func (n nodeAPI) info(ctx context.Context) controlapi.Info {
	d := n.d
	li := d.store.Leader()
	info := controlapi.Info{Node: d.state.ID, Role: d.state.Role, Leader: li.ID, IsLeader: li.IsLeader}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if id, err := d.identity(ctx); err == nil {
		info.Recipient = id.Recipient()
	}
	return info
}
