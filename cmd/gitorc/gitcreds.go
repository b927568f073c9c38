package main

import (
	"errors"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/reconcile/gitsource"
)

// bootstrapGitCredentials reads bootstrap's https credentials for the
// repository, kept in memory until the new cluster's store holds them.
func bootstrapGitCredentials(f bootstrapFlags) (api.SecretBytes, error) {
	if f.gitPasswordFile == "" {
		if f.gitUsername != "" {
			return nil, errors.New("--git-username: give --git-password-file with it")
		}
		return nil, nil
	}
	if f.repo == "" || !gitsource.IsHTTPURL(f.repo) {
		return nil, errors.New("--git-password-file: only for an https --repo")
	}
	pass, err := readSecretFile("--git-password-file", f.gitPasswordFile, f.stdin)
	if err != nil {
		return nil, err
	}
	return api.SecretBytes(pass), nil
}
