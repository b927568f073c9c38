package allocator

import (
	"fmt"
	"net/netip"

	"github.com/gitorc/gitorc/cluster/api"
)

// VIPs gives services their VIPs from the cluster's VIP pool.
type VIPs struct {
	pool netip.Prefix
	c    *circle
}

// NewVIPs reads the VIPs every service holds; the VIP of the most recently
// created service holding one (the greatest ID) sets where the next search
// starts.
func NewVIPs(cfg api.NetworkConfig, services []*api.Service) (*VIPs, error) {
	_, pool, err := cfg.Pools()
	if err != nil {
		return nil, err
	}
	v := &VIPs{pool: pool, c: newCircle(pool.Addr().Next(), lastAddr(pool).Prev())}
	newest := ""
	for _, s := range services {
		if s.Endpoint == nil || s.Endpoint.VIP == "" {
			continue
		}
		a, err := netip.ParseAddr(s.Endpoint.VIP)
		if err != nil {
			continue
		}
		v.c.use(a)
		if s.ID > newest {
			newest, v.c.cursor = s.ID, a
		}
	}
	return v, nil
}

// Next gives a VIP ("10.96.0.7").
func (v *VIPs) Next() (string, error) {
	a, ok := v.c.next()
	if !ok {
		return "", &exhaustedError{fmt.Sprintf("VIP pool %s exhausted", v.pool)}
	}
	return a.String(), nil
}

// WantsVIP reports whether a service should hold a VIP: vip endpoint mode.
func WantsVIP(s *api.Service) bool { return s.Spec.Endpoint.Mode == api.EndpointVIP }
