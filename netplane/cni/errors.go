package cni

import "errors"

// Sentinel errors; callers match them with errors.Is.
var (
	// ErrPluginNotFound: a CNI plugin the attachment needs is not
	// installed in any of the plugin directories.
	ErrPluginNotFound = errors.New("cni plugin not found")
)
