package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/gitorc/gitorc/reconcile/gitsource"
	"github.com/gitorc/gitorc/reconcile/notify"
	"github.com/spf13/cobra"
)

func newSourceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "source",
		Short: "The Git source the cluster follows",
	}
	cmd.AddCommand(newSourceSetCmd())
	return cmd
}

func newSourceSetCmd() *cobra.Command {
	var p controlapi.SourcePatch
	var repo, branch, path, revert, selfHeal, secretFile string
	var interval time.Duration
	var windows []string
	var noWindows bool
	cmd := &cobra.Command{
		Use:   "set",
		Short: "Change the repository, ref, path, poll interval, revert or self-heal policy, sync windows or webhook secret",
		Long: `Changes what the cluster follows; only the flags given change. Any manager takes the
change; the leader restarts its GitOps loop on a new repository, ref or path and syncs
at once. Sync windows (--window, repeatable, replaces the list) allow or deny automatic
syncs — polls, webhooks, local changes — from each time a cron schedule fires, for a
duration: "allow|deny CRON DURATION", in UTC unless the schedule starts with
CRON_TZ=<zone>. With any allow window, automatic syncs run only inside one; deny wins.
gitorc sync always runs.

  gitorc source set --repo https://git.example.com/ops/stacks.git --branch main
  gitorc source set --window 'deny 0 22 * * 5 60h'       # no automatic syncs over the weekend
  gitorc source set --window 'allow 0 9-16 * * 1-5 1h'    # office hours only
  gitorc source set --webhook-secret-file hook.secret     # "-" reads standard input
  gitorc source set --repo https://git.example.com/ops/private.git --git-password-file token

Credentials never go in the URL (they would be kept in clear and shown by gitorc
status): --git-password-file holds the https password or access token, kept as a
cluster key (replicated, encrypted at rest, never shown); --git-username goes with
it (default "git", which GitHub, Gitea and GitLab accept with a token).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if f.Changed("repo") {
				if err := gitsource.RefuseURLCredentials("--repo", repo); err != nil {
					return err
				}
				url, err := absRepo(repo)
				if err != nil {
					return err
				}
				p.Repo = &url
			}
			if f.Changed("branch") {
				p.Branch = &branch
			}
			if f.Changed("path") {
				p.Path = &path
			}
			if f.Changed("interval") {
				iv := api.Duration(interval)
				p.Interval = &iv
			}
			if f.Changed("revert") {
				p.Revert = &revert
			}
			if f.Changed("self-heal") {
				p.SelfHeal = &selfHeal
			}
			if f.Changed("window") || noWindows {
				if noWindows && len(windows) > 0 {
					return errors.New("--no-windows and --window: give one")
				}
				ws := []api.SyncWindow{}
				for _, s := range windows {
					w, err := reconcile.ParseWindow(s)
					if err != nil {
						return fmt.Errorf("--window: %w", err)
					}
					ws = append(ws, w)
				}
				p.Windows = &ws
			}
			if secretFile != "" {
				secret, err := webhookSecretFrom(func() ([]byte, error) {
					if secretFile == "-" {
						return io.ReadAll(cmd.InOrStdin())
					}
					return os.ReadFile(secretFile)
				})
				if err != nil {
					return fmt.Errorf("--webhook-secret-file %s: %w", secretFile, err)
				}
				p.WebhookSecret = &secret
			}
			for flag, dst := range map[string]**string{"notify": &p.NotifyURL, "commit-status": &p.CommitStatus,
				"commit-status-api": &p.CommitStatusAPI, "commit-status-repo": &p.CommitStatusRepo} {
				if f.Changed(flag) {
					v, _ := f.GetString(flag)
					*dst = &v
				}
			}
			if f.Changed("git-username") {
				v, _ := f.GetString("git-username")
				p.GitUsername = &v
			}
			for flag, dst := range map[string]**string{"notify-secret-file": &p.NotifySecret, "commit-status-token-file": &p.CommitStatusToken,
				"git-password-file": &p.GitPassword} {
				file, _ := f.GetString(flag)
				if file == "" {
					continue
				}
				var b []byte
				var err error
				if file == "-" {
					b, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<10))
				} else {
					b, err = os.ReadFile(file)
				}
				if err != nil {
					return fmt.Errorf("--%s %s: %w", flag, file, err)
				}
				v := strings.TrimSpace(string(b))
				if v == "" {
					return fmt.Errorf("--%s %s: the file is empty", flag, file)
				}
				*dst = &v
			}
			if p == (controlapi.SourcePatch{}) {
				return errors.New("nothing to change: give --repo, --branch, --path, --interval, --revert, --self-heal, --window, --no-windows, --webhook-secret-file, --git-password-file, --notify or --commit-status")
			}
			rep, err := newAPIClient(cmd).SetSource(cmd.Context(), p)
			if err != nil {
				return err
			}
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			printSource(cmd.OutOrStdout(), rep)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&repo, "repo", "", "Git repository: https URL, or a local path")
	f.StringVar(&branch, "branch", "", "branch, tag or commit to follow (empty: the repository's HEAD)")
	f.StringVar(&path, "path", "", "sub-directory of the repository holding the stacks")
	f.DurationVar(&interval, "interval", 0, "how often to poll the repository")
	f.StringVar(&revert, "revert", "", "on a failed rollout: auto (back to the last good revision) or off")
	f.StringVar(&selfHeal, "self-heal", "", "objects changed behind Git's back: auto (restored at the next automatic sync) or off (reported only)")
	f.StringArrayVar(&windows, "window", nil, "sync window \"allow|deny CRON DURATION\" (repeatable; replaces the windows)")
	f.BoolVar(&noWindows, "no-windows", false, "remove every sync window")
	f.StringVar(&secretFile, "webhook-secret-file", "", "file holding the webhooks' shared secret (- for standard input)")
	f.String("notify", "", "post a JSON event of each sync's outcome to this URL (off: stop)")
	f.String("notify-secret-file", "", "file holding the key that signs the events (HMAC-SHA256, header "+notify.SignatureHeader+": sha256=<hex>)")
	f.String("commit-status", "", "set each synced commit's status on its Git host: github, gitea or gitlab (off: stop)")
	f.String("commit-status-api", "", "the Git host's address (default https://api.github.com for github)")
	f.String("commit-status-repo", "", "the repository on the Git host: owner/name (the project's path on GitLab)")
	f.String("commit-status-token-file", "", "file holding the Git host's API token")
	f.String("git-password-file", "", "file holding the repository's https password or access token (- for standard input)")
	f.String("git-username", "", "the repository's https user name, with --git-password-file (default git)")
	addOutputFlag(cmd)
	return cmd
}

// absRepo makes a local repository path absolute; URLs are kept.
func absRepo(repo string) (string, error) {
	if repo == "" || strings.Contains(repo, "://") || strings.Contains(repo, "@") {
		return repo, nil
	}
	return filepath.Abs(repo)
}

func printSource(w io.Writer, rep controlapi.SourceReport) {
	s := rep.Source
	ref := s.Ref
	if ref == "" {
		ref = "HEAD"
	}
	fmt.Fprintf(w, "source:     %s (%s", gitsource.RedactURL(s.URL), ref)
	if s.Path != "" {
		fmt.Fprintf(w, ", path %s", s.Path)
	}
	heal := s.SelfHeal
	if heal == "" {
		heal = "auto"
	}
	fmt.Fprintf(w, ", every %s, revert %s, self-heal %s)\n", s.Interval, s.Revert, heal)
	for _, win := range s.Windows {
		fmt.Fprintf(w, "window:     %s\n", reconcile.FormatWindow(win))
	}
	secret := "none (webhooks are refused)"
	if rep.WebhookSecretSet {
		secret = "set"
	}
	fmt.Fprintf(w, "webhook secret: %s\n", secret)
	if rep.GitCredentialsSet {
		fmt.Fprintln(w, "git credentials: set")
	}
	if n := s.Notify; n != nil {
		if n.URL != "" {
			signed := "unsigned"
			if rep.NotifySecretSet {
				signed = "signed"
			}
			fmt.Fprintf(w, "notify:     %s (%s)\n", gitsource.RedactURL(n.URL), signed)
		}
		if n.CommitStatus != "" {
			token := "no token: gitorc source set --commit-status-token-file FILE"
			if rep.CommitStatusTokenSet {
				token = "token set"
			}
			fmt.Fprintf(w, "commit status: %s %s (%s)\n", n.CommitStatus, n.CommitStatusRepo, token)
		}
	}
}

// readSecretFile reads a credential file ("-": r), trimmed, at most 64 KiB.
func readSecretFile(flag, file string, r io.Reader) (string, error) {
	var b []byte
	var err error
	if file == "-" {
		b, err = io.ReadAll(io.LimitReader(r, 64<<10))
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", flag, file, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s %s: the file is empty", flag, file)
	}
	return v, nil
}
