package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// errMismatch is an upstream reply to another question.
var errMismatch = errors.New("reply to another question")

// forward relays r to the upstreams in order and writes the first
// answer; SERVFAIL when none answers (or none is configured, or too many
// queries are being forwarded already).
func (s *Server) forward(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, udp bool) {
	var reply *dns.Msg
	select {
	case s.inflight <- struct{}{}:
		reply = s.relay(ctx, r)
		<-s.inflight
	default:
		s.warn("dns forwarding saturated", keyName, r.Question[0].Name)
	}
	if reply == nil {
		reply = new(dns.Msg)
		reply.SetRcode(r, dns.RcodeServerFailure)
		reply.RecursionAvailable = true
	}
	if udp {
		reply.Truncate(clientSize(r))
	}
	_ = w.WriteMsg(reply)
}

// relay returns the first upstream reply that is not SERVFAIL or
// REFUSED, else the last reply received, else nil.
func (s *Server) relay(ctx context.Context, r *dns.Msg) *dns.Msg {
	var last *dns.Msg
	var lastErr error
	for _, up := range s.cfg.Upstreams {
		reply, err := s.exchange(ctx, "udp", up, r)
		if err == nil && reply.Truncated {
			if full, terr := s.exchange(ctx, "tcp", up, r); terr == nil {
				reply = full
			} else {
				// The client can retry over tcp; another upstream may
				// do better.
				last, err = reply, terr
			}
		}
		if err != nil {
			lastErr = err
			s.log.Debug("dns upstream failed", keyUpstream, up, keyName, r.Question[0].Name, keyErr, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		last = reply
		if reply.Rcode != dns.RcodeServerFailure && reply.Rcode != dns.RcodeRefused {
			return reply
		}
	}
	if last == nil && len(s.cfg.Upstreams) > 0 && ctx.Err() == nil {
		s.warn("dns: no upstream answered", keyUpstream, s.cfg.Upstreams, keyErr, lastErr)
	}
	return last
}

// exchange sends r to one upstream over network, from the plane's
// namespace, within Timeout (or until ctx ends).
func (s *Server) exchange(ctx context.Context, network, up string, r *dns.Msg) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	var conn net.Conn
	err := s.cfg.NS.Do(func() (err error) {
		conn, err = s.dialer.DialContext(ctx, network, up)
		return err
	})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// The library heeds ctx's deadline only: closing the socket cuts a
	// read short when Run ends.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	reply, _, err := s.client.ExchangeWithConnContext(ctx, r, &dns.Conn{Conn: conn})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", network, up, err)
	}
	if len(reply.Question) != 1 || !strings.EqualFold(reply.Question[0].Name, r.Question[0].Name) ||
		reply.Question[0].Qtype != r.Question[0].Qtype || reply.Question[0].Qclass != r.Question[0].Qclass {
		return nil, fmt.Errorf("%s %s: %w", network, up, errMismatch)
	}
	return reply, nil
}

// warn logs at most once per warnEvery.
func (s *Server) warn(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := s.warned.Load()
	if now-last < int64(warnEvery) || !s.warned.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn(msg, args...)
}
