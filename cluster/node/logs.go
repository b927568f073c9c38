package node

import (
	"context"
	"crypto/tls"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi/server"
	"github.com/gitorc/gitorc/cluster/dispatcher"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/gitorc/gitorc/cluster/logs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// startLogs serves gitorc logs on this manager: from the dispatcher's
// sessions when it leads, else forwarded to the leader (managers only,
// with this manager's certificate).
func (d *daemon) startLogs(disp *dispatcher.Dispatcher, srv *grpc.Server, cliTLS *tls.Config) error {
	svc, err := logs.New(logs.Config{Store: d.store, Source: disp, NoSession: dispatcher.ErrNoSession,
		Leader: func() bool { return d.store.Leader().IsLeader },
		Forward: func(ctx context.Context, q logs.Query, emit func(api.LogLine) error) error {
			li := d.store.Leader()
			addr := d.managerAddr(li)
			if li.ID == "" || addr == "" {
				return logs.ErrNoLeader
			}
			cc, err := grpc.NewClient(addr, append(wire.DialOptions(), grpc.WithTransportCredentials(credentials.NewTLS(cliTLS)))...)
			if err != nil {
				return err
			}
			defer cc.Close()
			return logs.Forward(ctx, cc, q, emit)
		},
		Logger: d.log.With("component", "logs")})
	if err != nil {
		return err
	}
	logs.Register(srv, svc, d.managersOnly)
	d.logs = svc
	return nil
}

// logsStreamer is the control API's logs, nil without them.
func (d *daemon) logsStreamer() server.LogStreamer {
	if d.logs == nil {
		return nil
	}
	return d.logs
}
