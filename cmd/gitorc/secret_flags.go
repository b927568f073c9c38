package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

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

// webhookSecretFrom reads a webhook secret from a file ("-": standard
// input), trimmed of surrounding whitespace.
func webhookSecretFrom(read func() ([]byte, error)) (string, error) {
	b, err := read()
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errors.New("the webhook secret is empty")
	}
	return s, nil
}

// bootstrapWebhookSecret reads bootstrap's webhook secret, kept in memory
// until the new cluster's store holds it (never in node.json).
func bootstrapWebhookSecret(f bootstrapFlags) (api.SecretBytes, error) {
	switch {
	case f.webhookSecret != "" && f.webhookSecretFile != "":
		return nil, errors.New("--webhook-secret and --webhook-secret-file: give one")
	case f.webhookSecretFile != "":
		s, err := webhookSecretFrom(func() ([]byte, error) {
			if f.webhookSecretFile == "-" && f.stdin != nil {
				return io.ReadAll(io.LimitReader(f.stdin, 64<<10))
			}
			return os.ReadFile(f.webhookSecretFile)
		})
		if err != nil {
			return nil, fmt.Errorf("--webhook-secret-file %s: %w", f.webhookSecretFile, err)
		}
		return api.SecretBytes(s), nil
	case f.webhookSecret != "":
		if strings.TrimSpace(f.webhookSecret) == "" {
			return nil, errors.New("--webhook-secret: the webhook secret is empty")
		}
		return api.SecretBytes(strings.TrimSpace(f.webhookSecret)), nil
	}
	return nil, nil
}
