package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/spf13/cobra"
)

func newHistoryCmd() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "history",
		Short: "The cluster's syncs: revision, trigger, start, end, result and message, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			hist, err := newAPIClient(cmd).History(cmd.Context(), limit)
			if err != nil {
				return err
			}
			if format == outJSON {
				if hist == nil {
					hist = []api.SyncRecord{} // an array, also when empty
				}
				return writeJSON(cmd.OutOrStdout(), hist)
			}
			if len(hist) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no syncs yet")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REVISION\tTRIGGER\tSTARTED\tENDED\tRESULT\tMESSAGE")
			for _, h := range hist {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", reconcile.ShortCommit(h.Revision), h.Trigger, clockTime(h.StartedAt),
					endTime(h), h.Result, firstLine(h.Message))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVarP(&limit, "limit", "n", 0, "show the last N syncs only")
	addOutputFlag(cmd)
	return cmd
}

// clockTime prints a time in the local zone, to the second.
func clockTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// endTime is when a sync ended, and how long it took; "-" while it runs.
func endTime(r api.SyncRecord) string {
	if r.FinishedAt.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%s (%s)", clockTime(r.FinishedAt), r.FinishedAt.Sub(r.StartedAt).Round(time.Second))
}
