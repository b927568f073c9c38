package main

import (
	"context"
	"net/http"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
)

func init() { controlMounts = append(controlMounts, mountControlAPI) }

// mountControlAPI serves the node, service and task endpoints the CLI's
// node, service and ps commands call.
func mountControlAPI(d *daemon, mux *http.ServeMux) {
	hash := func(ctx context.Context, plain []byte) (string, error) {
		ident, err := d.identity(ctx)
		if err != nil {
			return "", err
		}
		return ident.Hash(api.SecretBytes(plain)), nil
	}
	// Register fails only without a store, which a manager always has.
	if err := controlapi.Register(mux, controlapi.Config{Store: d.store, Logger: d.log, HashSecret: hash,
		Leader: func() string { return d.store.Leader().ID }, Logs: d.logsStreamer()}); err != nil {
		panic(err)
	}
}
