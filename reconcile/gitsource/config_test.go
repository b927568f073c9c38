package gitsource

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	dd := t.TempDir()
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"https token", Config{URL: "https://git.example.com/ops/stacks.git", Ref: "main", Auth: Auth{Token: "tok"}}, ""},
		{"local path", Config{URL: "/srv/git/stacks", Ref: "v1.2.0", Path: "stacks/"}, ""},
		{"file url commit", Config{URL: "file:///srv/git/stacks", Ref: strings.Repeat("a", 40)}, ""},
		{"remote head", Config{URL: "https://h/r.git"}, ""},
		{"full ref", Config{URL: "https://h/r.git", Ref: "refs/tags/v1"}, ""},
		{"empty url", Config{Ref: "main"}, "url is empty"},
		{"ftp", Config{URL: "ftp://h/r.git"}, "not https://"},
		{"relative path", Config{URL: "./examples/hello"}, "not https://"},
		{"relative file url", Config{URL: "file://examples/hello"}, "local path must be absolute"},
		{"bad ref", Config{URL: "https://h/r.git", Ref: "ma..in"}, `ref "ma..in": not a valid`},
		{"other ref namespace", Config{URL: "https://h/r.git", Ref: "refs/pull/1/head"}, "only refs/heads/"},
		{"escaping path", Config{URL: "https://h/r.git", Path: "../x"}, "must stay inside"},
		{"absolute path", Config{URL: "https://h/r.git", Path: "/x"}, "relative to the repository root"},
		{"password and token", Config{URL: "https://h/r.git", Auth: Auth{Password: "p1p", Token: "t1t"}}, "not both"},
		{"creds twice", Config{URL: "https://u:p@h/r.git", Auth: Auth{Token: "t1t"}}, "both in the url and in auth"},
		{"ssh key over https", Config{URL: "https://h/r.git", Auth: Auth{SSHKey: []byte("k")}}, "needs an ssh url"},
		{"creds for local", Config{URL: "/srv/r", Auth: Auth{Token: "t1t"}}, "credentials given for local path"},
		{"no data dir", Config{URL: "https://h/r.git", DataDir: "-"}, "data dir is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			switch tc.cfg.DataDir {
			case "":
				tc.cfg.DataDir = dd
			case "-":
				tc.cfg.DataDir = ""
			}
			err := tc.cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestRedaction(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:s3cret@h/r.git":    "https://user:***@h/r.git",
		"https://ghp_tokentoken@h/r.git": "https://***@h/r.git",
		"https://h/r.git":                "https://h/r.git",
		"ssh://git@h/r.git":              "ssh://git@h/r.git",
		"git@h:r.git":                    "git@h:r.git",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%s) = %s, want %s", in, got, want)
		}
	}
	a := Auth{Username: "u", Password: "s3cret", Token: "tok3n", SSHKey: []byte("KEY"), SSHKeyPassphrase: "ph4se"}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "auth", a)
	for _, s := range []string{a.String(), fmt.Sprintf("%v %+v %#v", a, a, a), logged.String()} {
		for _, secret := range []string{"s3cret", "tok3n", "KEY", "ph4se"} {
			if strings.Contains(s, secret) {
				t.Errorf("%q leaks %q", s, secret)
			}
		}
	}
	err := redactErr(errors.New(`Get "https://u:s3cret@h/r.git?x=s3cret": fail`), []string{"s3cret"})
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("redactErr = %v", err)
	}
}
