package node

import (
	"context"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/server"
)

var (
	_ server.Tokens     = nodeAPI{}
	_ server.AdminCerts = nodeAPI{}
	_ server.Autolock   = nodeAPI{}
	_ server.Leaver     = nodeAPI{}
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
