// Package controlapi is the control API's contract: every request and
// response type of its endpoints (types.go), which the server
// (cluster/controlapi/server, on managers and every node's socket), the
// typed client (cluster/controlapi/client) and the CLI share. It imports
// cluster/api only, so that a client links none of the manager's insides;
// the endpoints are listed in the server's package documentation.
package controlapi
