package wg

import "errors"

// ErrNotUp is returned by the methods that need the interface before Up
// made it.
var ErrNotUp = errors.New("wireguard interface not up")
