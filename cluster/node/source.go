package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/server"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/gitorc/gitorc/reconcile/gitsource"
	"github.com/gitorc/gitorc/reconcile/notify"
)

// applySource returns s changed by the patch p, or every problem with it.
func applySource(p controlapi.SourcePatch, s api.SourceSpec) (api.SourceSpec, error) {
	var errs []error
	if p.Repo != nil {
		if err := gitsource.RefuseURLCredentials("--repo", *p.Repo); err != nil {
			errs = append(errs, err)
		}
		s.URL = *p.Repo
	}
	if p.Branch != nil {
		s.Ref = *p.Branch
	}
	if p.Path != nil {
		s.Path = *p.Path
	}
	if p.Interval != nil {
		s.Interval = *p.Interval
	}
	if p.Revert != nil {
		s.Revert = *p.Revert
	}
	if p.SelfHeal != nil {
		s.SelfHeal = *p.SelfHeal
	}
	if p.Windows != nil {
		s.Windows = *p.Windows
	}
	if p.NotifyURL != nil || p.CommitStatus != nil || p.CommitStatusAPI != nil || p.CommitStatusRepo != nil {
		n := api.NotifySpec{}
		if s.Notify != nil {
			n = *s.Notify
		}
		set := func(dst *string, v *string) {
			if v != nil {
				*dst = *v
				if *v == "off" {
					*dst = ""
				}
			}
		}
		set(&n.URL, p.NotifyURL)
		set(&n.CommitStatus, p.CommitStatus)
		set(&n.CommitStatusAPI, p.CommitStatusAPI)
		set(&n.CommitStatusRepo, p.CommitStatusRepo)
		if old := s.Notify; old == nil || !sameNotify(*old, n) {
			n.Since = time.Now() // what ended before is not told
		}
		s.Notify = &n
		if sameNotify(n, api.NotifySpec{}) {
			s.Notify = nil
		}
	}
	if s.Notify != nil {
		if err := notify.Validate(*s.Notify); err != nil {
			errs = append(errs, err)
		}
	}
	if s.URL == "" {
		errs = append(errs, errors.New("--repo: the cluster follows no repository yet: give one"))
	} else {
		// The checks gitsource makes when the leader opens the source;
		// the data dir is the leader's business.
		cfg := gitsource.Config{URL: s.URL, Ref: s.Ref, Path: s.Path, DataDir: "/"}
		if err := cfg.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.Interval <= 0 {
		errs = append(errs, fmt.Errorf("--interval %s: must be positive", s.Interval))
	}
	if s.Revert != "auto" && s.Revert != reconcile.RevertOff {
		errs = append(errs, fmt.Errorf("--revert %q: must be auto or off", s.Revert))
	}
	if s.SelfHeal != "" && s.SelfHeal != "auto" && s.SelfHeal != reconcile.SelfHealOff {
		errs = append(errs, fmt.Errorf("--self-heal %q: must be auto or off", s.SelfHeal))
	}
	if _, err := reconcile.CompileWindows(s.Windows); err != nil {
		errs = append(errs, err)
	}
	if p.WebhookSecret != nil && strings.TrimSpace(*p.WebhookSecret) == "" {
		errs = append(errs, errors.New("--webhook-secret-file: the webhook secret is empty"))
	}
	if p.GitUsername != nil && p.GitPassword == nil {
		errs = append(errs, errors.New("--git-username: give --git-password-file with it"))
	}
	if p.GitPassword != nil && s.URL != "" && !gitsource.IsHTTPURL(s.URL) {
		errs = append(errs, fmt.Errorf("--git-password-file: %s is not an https repository", gitsource.RedactURL(s.URL)))
	}
	return s, errors.Join(errs...)
}

// SetSource is PATCH /v1/source: any manager changes the cluster's
// source; the leader's loop restarts on a new repository, ref or path.
func (s syncAPI) SetSource(ctx context.Context, p controlapi.SourcePatch) (controlapi.SourceReport, error) {
	fail := func(code int, err error) (controlapi.SourceReport, error) {
		return controlapi.SourceReport{}, server.WithStatus(code, err)
	}
	cur, err := s.cl.Sync(ctx)
	if err != nil {
		return fail(http.StatusServiceUnavailable, err)
	}
	if cur.Source.URL == "" {
		// A first source: bootstrap's defaults.
		cur.Source = api.SourceSpec{Interval: api.Duration(reconcile.DefaultPollInterval), Revert: "auto"}
	}
	if _, err := applySource(p, cur.Source); err != nil {
		return fail(http.StatusBadRequest, fmt.Errorf("source not changed: %w", err))
	}
	var gitCreds *string
	if p.GitPassword != nil {
		c := encodeGitCredentials(p.GitUsername, *p.GitPassword)
		gitCreds = &c
	}
	for key, v := range map[string]*string{keyWebhookSecret: p.WebhookSecret, keyNotifySecret: p.NotifySecret,
		keyCommitStatusToken: p.CommitStatusToken, keyGitCredentials: gitCreds} {
		if v == nil {
			continue
		}
		if strings.TrimSpace(*v) == "" {
			return fail(http.StatusBadRequest, errors.New("source not changed: a secret file is empty"))
		}
		if err := s.d.setClusterKey(ctx, key, []byte(strings.TrimSpace(*v))); err != nil {
			return fail(http.StatusServiceUnavailable, err)
		}
	}
	st, err := s.cl.UpdateSync(ctx, func(st *api.SyncState) error {
		base := st.Source
		if base.URL == "" {
			base = cur.Source
		}
		next, err := applySource(p, base)
		if err != nil {
			return err
		}
		st.Source = next
		return nil
	})
	if err != nil {
		return fail(http.StatusServiceUnavailable, err)
	}
	_, kerr := s.d.clusterKey(keyWebhookSecret)
	_, nerr := s.d.clusterKey(keyNotifySecret)
	_, terr := s.d.clusterKey(keyCommitStatusToken)
	_, gerr := s.d.clusterKey(keyGitCredentials)
	return controlapi.SourceReport{Source: redactSource(st.Source), WebhookSecretSet: kerr == nil,
		NotifySecretSet: nerr == nil, CommitStatusTokenSet: terr == nil, GitCredentialsSet: gerr == nil}, nil
}

// sameNotify reports whether two notify specs send the same, whenever
// they were set.
func sameNotify(a, b api.NotifySpec) bool {
	a.Since, b.Since = time.Time{}, time.Time{}
	return a == b
}

// keyGitCredentials is the internal secret (clusterkeys.go) holding the
// repository's https credentials: "USER\nPASSWORD", USER empty for a
// token. Replicated, encrypted at rest, never shown.
const keyGitCredentials = "gitorc-internal-git-credentials"

// gitCredSealed is bootstrap's --git-password-file, sealed like the
// webhook secret until the store holds it.
const gitCredSealed = "git-credentials.sealed"

// gitAuth is the Auth of an https source from the cluster's credentials,
// none when it has none or the source is not https.
func (d *daemon) gitAuth(sourceURL string) (gitsource.Auth, error) {
	if !gitsource.IsHTTPURL(sourceURL) {
		return gitsource.Auth{}, nil
	}
	b, err := d.clusterKey(keyGitCredentials)
	if errors.Is(err, errNoClusterKey) {
		return gitsource.Auth{}, nil
	}
	if err != nil {
		return gitsource.Auth{}, err
	}
	user, pass, _ := strings.Cut(string(b), "\n")
	if user == "" {
		return gitsource.Auth{Token: pass}, nil
	}
	return gitsource.Auth{Username: user, Password: pass}, nil
}

// redactSource is a source as it may be shown: no credentials in its URLs.
func redactSource(s api.SourceSpec) api.SourceSpec {
	s.URL = gitsource.RedactURL(s.URL)
	if s.Notify != nil {
		n := *s.Notify
		n.URL = gitsource.RedactURL(n.URL)
		n.CommitStatusAPI = gitsource.RedactURL(n.CommitStatusAPI)
		s.Notify = &n
	}
	return s
}

// encodeGitCredentials is keyGitCredentials' content.
func encodeGitCredentials(user *string, password string) string {
	u := ""
	if user != nil {
		u = strings.TrimSpace(*user)
	}
	return u + "\n" + password
}
