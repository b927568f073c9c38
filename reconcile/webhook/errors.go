package webhook

import "errors"

// Sentinel errors; the HTTP layer maps them with errors.Is.
var (
	// ErrUnauthorized: missing or wrong signature or token (HTTP 401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrBadPayload: the body is not a payload this provider sends (HTTP 400).
	ErrBadPayload = errors.New("bad payload")
	// ErrUnknownProvider: not github, gitlab, gitea or generic (HTTP 404).
	ErrUnknownProvider = errors.New("unknown webhook provider")
)

// SignatureError says why a delivery was refused; it matches
// ErrUnauthorized. It never holds the secret or the received signature.
type SignatureError struct {
	Provider Provider
	Reason   string // "missing X-Hub-Signature-256 header", "signature mismatch"
}

func (e *SignatureError) Error() string {
	return string(e.Provider) + " webhook: " + e.Reason
}

func (e *SignatureError) Is(target error) bool { return target == ErrUnauthorized }

// PayloadError says what is wrong with a payload; it matches ErrBadPayload.
type PayloadError struct {
	Provider Provider
	Reason   string
}

func (e *PayloadError) Error() string {
	return string(e.Provider) + " payload: " + e.Reason
}

func (e *PayloadError) Is(target error) bool { return target == ErrBadPayload }

// IgnoredError is returned by a Trigger that accepts a delivery but will
// not act on it (for example while syncs are suspended); the handler
// answers 202 with action "ignored" and the reason.
type IgnoredError struct{ Reason string }

func (e *IgnoredError) Error() string { return "ignored: " + e.Reason }

// Ignore returns an IgnoredError.
func Ignore(reason string) error { return &IgnoredError{Reason: reason} }
