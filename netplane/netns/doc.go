// Package netns runs code inside a Linux network namespace and creates and
// removes namespaces bound to files (as ip netns does under /run/netns,
// but at any path). The network plane can live in the process's own
// namespace (the zero NS) or in another one, which lets tests give each
// node of a cluster a namespace of its own inside one process.
//
// It imports no other gitorc package.
package netns
