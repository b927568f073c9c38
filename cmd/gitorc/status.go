package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/gitorc/gitorc/reconcile/gitsource"
	"github.com/spf13/cobra"
)

func newStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Sync state, revision, rollouts and what is wrong, at a glance",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			c := newAPIClient(cmd)
			rep, err := c.SyncStatus(cmd.Context())
			if err != nil {
				return err
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			if err := printStatus(cmd, rep); err != nil {
				return err
			}
			if err := printRollouts(cmd, c); err != nil {
				return err
			}
			nodes, err := c.Nodes(cmd.Context())
			if err != nil {
				return err
			}
			if ws := nodeWarnings(nodes, now()); len(ws) > 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "nodes:")
				for _, w := range ws {
					fmt.Fprintf(cmd.OutOrStdout(), "  %s\n", w)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringP("output", "o", "", "output format: text or json")
	return cmd
}

func printStatus(cmd *cobra.Command, rep controlapi.SyncReport) error {
	w := cmd.OutOrStdout()
	st := rep.State
	short := func(s string) string {
		if len(s) > 12 {
			return s[:12]
		}
		if s == "" {
			return "-"
		}
		return s
	}
	if st.Source.URL == "" {
		fmt.Fprintln(w, "source:     none (stacks deployed by hand)")
	} else {
		ref := st.Source.Ref
		if ref == "" {
			ref = "HEAD"
		}
		fmt.Fprintf(w, "source:     %s (%s", gitsource.RedactURL(st.Source.URL), ref)
		if st.Source.Path != "" {
			fmt.Fprintf(w, ", path %s", st.Source.Path)
		}
		fmt.Fprintf(w, ", every %s)\n", st.Source.Interval)
	}
	fmt.Fprintf(w, "sync:       %s", st.Phase)
	if st.Suspended {
		fmt.Fprint(w, " (suspended: no automatic syncs; gitorc sync still syncs; gitorc resume)")
	}
	fmt.Fprintln(w)
	printTriggers(w, rep)
	fmt.Fprintf(w, "revision:   %s   last good: %s\n", short(st.Revision), short(st.LastGoodRevision))
	printPin(w, st) // rollback.go
	if st.Message != "" {
		fmt.Fprintf(w, "message:    %s\n", strings.ReplaceAll(st.Message, "\n", "\n            "))
	}
	if !st.LastFetch.IsZero() {
		fmt.Fprintf(w, "last fetch: %s ago\n", time.Since(st.LastFetch).Round(time.Second))
	}
	if st.LastFetchError != "" {
		fmt.Fprintf(w, "fetch error: %s\n", st.LastFetchError)
	}
	if len(st.FailedRevisions) > 0 {
		fmt.Fprintf(w, "failed:     %s (not retried until the source moves)\n", strings.Join(st.FailedRevisions, ", "))
	}
	if n := len(rep.History); n > 0 {
		fmt.Fprintln(w, "history:")
		for i := n - 1; i >= 0 && i >= n-5; i-- {
			h := rep.History[i]
			fmt.Fprintf(w, "  %s  %-8s %-11s %s\n", short(h.Revision), h.Trigger, h.Result, firstLine(h.Message))
		}
	}
	printWebhooks(w, rep)
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// printTriggers prints what holds or starts syncs: windows and pending
// requests.
func printTriggers(w io.Writer, rep controlapi.SyncReport) {
	st := rep.State
	if len(st.Source.Windows) > 0 {
		var ws []string
		for _, win := range st.Source.Windows {
			ws = append(ws, reconcile.FormatWindow(win))
		}
		fmt.Fprintf(w, "windows:    %s\n", strings.Join(ws, "; "))
		if c, err := reconcile.CompileWindows(st.Source.Windows); err != nil {
			fmt.Fprintf(w, "            ignored: %v\n", err)
		} else if open, next := c.Open(now()); !open && next.IsZero() {
			fmt.Fprintln(w, "            sync window closed: no window opens (automatic syncs never run; gitorc sync does)")
		} else if !open {
			fmt.Fprintf(w, "            sync window closed until %s (automatic syncs wait; gitorc sync runs anyway)\n", next.UTC().Format("2006-01-02 15:04 MST"))
		}
	}
	for _, r := range st.Requests {
		if r.Done() {
			continue
		}
		state := "pending"
		if !r.Pending() {
			state = "syncing on " + shortID(r.Node)
		}
		fmt.Fprintf(w, "request:    %s %s %s since %s", r.Trigger, r.ID, state, age(r.At))
		if r.Count > 1 {
			fmt.Fprintf(w, " (%d deliveries)", r.Count)
		}
		if r.Pending() && r.Attempts > 0 {
			fmt.Fprintf(w, ": %s", r.Message)
		}
		fmt.Fprintln(w)
	}
}

// printNotifications prints where sync outcomes go and the last
// notifications sent, failures first in mind: they never block a sync,
// so this is where they show.
func printNotifications(w io.Writer, st api.SyncState) {
	n := st.Source.Notify
	if n == nil && len(st.Notifications) == 0 {
		return
	}
	if n != nil {
		var to []string
		if n.URL != "" {
			to = append(to, gitsource.RedactURL(n.URL))
		}
		if n.CommitStatus != "" {
			to = append(to, n.CommitStatus+" commit status of "+n.CommitStatusRepo)
		}
		fmt.Fprintf(w, "notify:     %s\n", strings.Join(to, ", "))
	}
	for i := len(st.Notifications) - 1; i >= 0 && i >= len(st.Notifications)-5; i-- {
		d := st.Notifications[i]
		outcome := "delivered"
		if d.Error != "" {
			outcome = "FAILED: " + d.Error
		}
		fmt.Fprintf(w, "  %-4s %-8s %-9s %s %s\n", age(d.Time), d.Target, d.Event, reconcile.ShortCommit(d.Revision), outcome)
	}
}

// printWebhooks prints whether webhooks work and their last deliveries.
func printWebhooks(w io.Writer, rep controlapi.SyncReport) {
	st := rep.State
	var hook string
	switch h := rep.Webhook; {
	case !h.SecretSet && h.Listen == "" && len(st.Deliveries) == 0:
		hook = "off (gitorc source set --webhook-secret-file FILE; gitorc daemon --webhook-listen ADDR)"
	case !h.SecretSet:
		hook = "no secret: deliveries are refused (gitorc source set --webhook-secret-file FILE)"
	default:
		hook = "secret set"
	}
	if l := rep.Webhook.Listen; l != "" {
		hook += "; this manager serves POST /hooks/{github,gitlab,gitea,generic} on " + l
	} else if rep.Webhook.SecretSet {
		hook += "; this manager serves no webhooks (gitorc daemon --webhook-listen ADDR)"
	}
	fmt.Fprintf(w, "webhook:    %s\n", hook)
	printNotifications(w, st)
	if n := len(st.Deliveries); n > 0 {
		fmt.Fprintln(w, "deliveries:")
		for i := n - 1; i >= 0 && i >= n-5; i-- {
			d := st.Deliveries[i]
			what := strings.TrimSpace(d.Provider + " " + d.Event)
			fmt.Fprintf(w, "  %-4s %-18s %d %s\n", age(d.At), what, d.Status, d.Outcome)
		}
	}
}
