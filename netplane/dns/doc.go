// Package dns is the node's DNS server for service discovery
// (github.com/miekg/dns): it listens on the node's gateway, port 53, udp
// and tcp, inside the plane's network namespace, answers the cluster's
// names from the node's api.NetView, and forwards every other name to
// the upstream resolvers it is given.
//
// Who asks decides what resolves. The caller is the query's source
// address: a local task (NetView.Tasks) sees the services attached to
// its networks; any other caller (the node itself, an operator's dig on
// the host) sees every service of the view. For a caller on network N,
// each service attached to N answers to its Name ("shop_api"), its
// ShortName ("api") and its aliases on N; tasks.<any of those> answers
// the service's backends (NetService.Backends). A vip-mode service's
// name answers its VIP (TTL VIPTTL), a dnsrr-mode service's name its
// backends (TTL 0, rotated per query so that clients spread). A name
// shared by several services the caller sees answers all of their
// addresses, deduplicated. Names compare case-insensitively; only exact
// names resolve (containers get no search domains). PTR queries for a
// visible service's VIP or backends answer the service's Name.
//
// Cluster names never leave the node:
//
//   - a cluster name asked for another type than A (AAAA above all: stub
//     resolvers send A and AAAA together), or one with no address (tasks.x
//     of a service without backends): NOERROR, no answer (NODATA);
//   - a service name of the view that the caller does not see (and
//     tasks.<it>), and reverse names of the task and VIP pools: NXDOMAIN,
//     answered here.
//
// Names under a service name ("x.api", "a.tasks.api") are forwarded: with
// a service named app or dev, x.app and x.dev may be real domains.
//
// Every other name is forwarded to Config.Upstreams in order, over udp
// (tcp when the answer is truncated), with the client's query (and its
// id) unchanged, Config.Timeout per exchange; the next upstream is tried
// when one fails, refuses or answers SERVFAIL, and SERVFAIL is the answer
// when none does. The upstream sockets are opened inside Config.NS, like
// the listeners, so a node whose plane lives in another namespace
// forwards from there.
//
// SetView builds an index per view (one answer table per distinct set of
// networks among the local tasks, one for other callers) and swaps it in
// atomically; queries read it without locks. Packets whose header is not
// a plain query (responses, other opcodes, not exactly one question) are
// dropped; a query whose body does not parse gets FORMERR from the
// library, a reply no larger than the query.
//
// A tcp connection serves queries until it is idle (the library's default
// closes it after 128).
//
// Costs measured here (2 shared vCPUs, a real client over loopback,
// BenchmarkAnswer): a cluster name ≈ 35 µs over udp, 15 µs over a kept
// tcp connection, the same as a bare miekg/dns server answering a fixed
// record; a forwarded name ≈ 80–90 µs (a new upstream socket per query),
// ≈ 100 µs when the plane is in another namespace (NS.Do per socket). The
// lookup itself is ≈ 0.6 µs. SetView of a view with 1,000 services, 10,000
// backends and 100 local tasks on 10 sets of networks ≈ 30 ms, 11 MB.
//
// It imports cluster/api and netplane/netns only among gitorc packages.
package dns
