package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
)

// Provider is a webhook flavour.
type Provider string

// Providers.
const (
	GitHub  Provider = "github"
	GitLab  Provider = "gitlab"
	Gitea   Provider = "gitea"
	Generic Provider = "generic"
)

// Header names.
const (
	HeaderHubSignature256 = "X-Hub-Signature-256"
	HeaderGiteaSignature  = "X-Gitea-Signature"
	HeaderGitLabToken     = "X-Gitlab-Token"
	HeaderGitorcSignature = "X-Gitorc-Signature"
	HeaderGitHubEvent     = "X-GitHub-Event"
	HeaderGiteaEvent      = "X-Gitea-Event"
	HeaderGogsEvent       = "X-Gogs-Event"
	HeaderGitLabEvent     = "X-Gitlab-Event"
	HeaderGitorcEvent     = "X-Gitorc-Event"
)

// ParseProvider returns the provider of a name, or ErrUnknownProvider.
func ParseProvider(s string) (Provider, error) {
	switch p := Provider(strings.ToLower(s)); p {
	case GitHub, GitLab, Gitea, Generic:
		return p, nil
	}
	return "", ErrUnknownProvider
}

// Sign returns the "sha256=<hex>" HMAC-SHA256 signature of body, as
// GitHub, Gitea and generic senders put in their signature header.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// MaxTokenBytes is the longest GitLab token CheckHeader accepts.
const MaxTokenBytes = 4096

// CheckHeader refuses a delivery whose signature or token header is
// missing or malformed, from its headers alone: the handler calls it
// before it reads the body, so unsigned senders cost no memory. It
// verifies nothing (Verify does, with the body); it returns the
// *SignatureError Verify would.
func CheckHeader(p Provider, h http.Header) error {
	switch p {
	case GitHub, Generic:
		header := HeaderHubSignature256
		if p == Generic {
			header = HeaderGitorcSignature
		}
		_, err := signature(p, header, h.Get(header), true)
		return err
	case Gitea:
		if v := h.Get(HeaderHubSignature256); v != "" {
			_, err := signature(p, HeaderHubSignature256, v, true)
			return err
		}
		_, err := signature(p, HeaderHubSignature256, h.Get(HeaderGiteaSignature), false)
		return err
	case GitLab:
		tok := h.Get(HeaderGitLabToken)
		if tok == "" {
			return &SignatureError{Provider: p, Reason: "missing " + HeaderGitLabToken + " header"}
		}
		if len(tok) > MaxTokenBytes {
			return &SignatureError{Provider: p, Reason: HeaderGitLabToken + " is longer than any token"}
		}
		return nil
	}
	return ErrUnknownProvider
}

// Verify checks a delivery's signature or token against secret. The
// comparison is constant-time. An empty secret refuses everything.
func Verify(p Provider, secret []byte, h http.Header, body []byte) error {
	if len(secret) == 0 {
		return &SignatureError{Provider: p, Reason: "no webhook secret configured"}
	}
	switch p {
	case GitHub:
		return verifyHMAC(p, secret, body, HeaderHubSignature256, h.Get(HeaderHubSignature256), true)
	case Gitea:
		if v := h.Get(HeaderHubSignature256); v != "" {
			return verifyHMAC(p, secret, body, HeaderHubSignature256, v, true)
		}
		// Older Gitea sends the bare hex digest only.
		return verifyHMAC(p, secret, body, HeaderHubSignature256, h.Get(HeaderGiteaSignature), false)
	case Generic:
		return verifyHMAC(p, secret, body, HeaderGitorcSignature, h.Get(HeaderGitorcSignature), true)
	case GitLab:
		if err := CheckHeader(p, h); err != nil {
			return err
		}
		// Compare digests so the comparison does not leak the length.
		a, b := sha256.Sum256([]byte(h.Get(HeaderGitLabToken))), sha256.Sum256(secret)
		if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
			return &SignatureError{Provider: p, Reason: "token mismatch"}
		}
		return nil
	}
	return ErrUnknownProvider
}

// signature decodes a signature header's value: "sha256=<hex>" when
// prefixed, else the bare hex digest.
func signature(p Provider, header, value string, prefixed bool) ([]byte, error) {
	if value == "" {
		return nil, &SignatureError{Provider: p, Reason: "missing " + header + " header"}
	}
	hexSig := value
	if prefixed {
		var ok bool
		hexSig, ok = strings.CutPrefix(value, "sha256=")
		if !ok {
			return nil, &SignatureError{Provider: p, Reason: header + " is not sha256=<hex>"}
		}
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return nil, &SignatureError{Provider: p, Reason: header + " is not sha256=<hex>"}
	}
	return got, nil
}

func verifyHMAC(p Provider, secret, body []byte, header, value string, prefixed bool) error {
	got, err := signature(p, header, value, prefixed)
	if err != nil {
		return err
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return &SignatureError{Provider: p, Reason: "signature mismatch"}
	}
	return nil
}
