package webhook

import (
	"errors"
	"testing"
)

func TestVerify(t *testing.T) {
	secret := []byte("It's a Secret to Everybody")
	body := []byte("Hello, World!")
	// GitHub's documented example: this secret and body give this signature.
	const githubExample = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got := Sign(secret, body); got != githubExample {
		t.Fatalf("Sign = %s, want GitHub's documented %s", got, githubExample)
	}
	for _, tc := range []struct {
		name     string
		provider Provider
		header   []string
		secret   string
		wantErr  string
	}{
		{"github ok", GitHub, []string{HeaderHubSignature256, githubExample}, "", ""},
		{"github missing", GitHub, nil, "", "github webhook: missing X-Hub-Signature-256 header"},
		{"github mismatch", GitHub, []string{HeaderHubSignature256, Sign([]byte("other"), body)}, "", "github webhook: signature mismatch"},
		{"github sha1 only", GitHub, []string{"X-Hub-Signature", "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59"}, "", "github webhook: missing X-Hub-Signature-256 header"},
		{"github no prefix", GitHub, []string{HeaderHubSignature256, githubExample[7:]}, "", "github webhook: X-Hub-Signature-256 is not sha256=<hex>"},
		{"github not hex", GitHub, []string{HeaderHubSignature256, "sha256=zz"}, "", "github webhook: X-Hub-Signature-256 is not sha256=<hex>"},
		{"github empty secret", GitHub, []string{HeaderHubSignature256, Sign(nil, body)}, "-", "github webhook: no webhook secret configured"},
		{"gitea hub header", Gitea, []string{HeaderHubSignature256, githubExample}, "", ""},
		{"gitea bare hex", Gitea, []string{HeaderGiteaSignature, githubExample[7:]}, "", ""},
		{"gitea mismatch", Gitea, []string{HeaderGiteaSignature, Sign([]byte("x"), body)[7:]}, "", "gitea webhook: signature mismatch"},
		{"gitlab ok", GitLab, []string{HeaderGitLabToken, string(secret)}, "", ""},
		{"gitlab wrong", GitLab, []string{HeaderGitLabToken, "It's a Secret to Everybody!"}, "", "gitlab webhook: token mismatch"},
		{"gitlab missing", GitLab, nil, "", "gitlab webhook: missing X-Gitlab-Token header"},
		{"generic ok", Generic, []string{HeaderGitorcSignature, githubExample}, "", ""},
		{"generic wrong header", Generic, []string{HeaderHubSignature256, githubExample}, "", "generic webhook: missing X-Gitorc-Signature header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := secret
			if tc.secret == "-" {
				s = nil
			}
			err := Verify(tc.provider, s, hdr(tc.header...), body)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify = %v", err)
				}
				return
			}
			var se *SignatureError
			if err == nil || err.Error() != tc.wantErr || !errors.Is(err, ErrUnauthorized) || !errors.As(err, &se) {
				t.Fatalf("Verify = %v, want %q (ErrUnauthorized)", err, tc.wantErr)
			}
		})
	}
	// A signature of a different body fails: the body is what is signed.
	if err := Verify(GitHub, secret, hdr(HeaderHubSignature256, githubExample), []byte("Hello, World?")); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("tampered body verified: %v", err)
	}
}
