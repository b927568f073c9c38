package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/spf13/cobra"
)

func newEventsCmd() *cobra.Command {
	var since string
	var filters []string
	var until time.Duration
	cmd := &cobra.Command{
		Use:   "events [--since 10m] [--filter type=service|task|node|sync]",
		Short: "Print what changes in the cluster as it happens: rollouts, tasks, nodes, syncs",
		Long: `Prints each change as the managers commit it, until interrupted (or --until):
a service's rollout progress, a task's state (and why it failed), a node going down
or coming back, a sync starting and finishing with its result. --since first prints
the objects changed since then (their latest state). With -o json, one JSON object
a line: {time, type, action, id, name, state, message, service, node, desired,
revision, trigger, replayed}; a "gap" event says events were lost (a client too slow).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			q := url.Values{}
			var types []string
			for _, f := range filters {
				k, v, ok := strings.Cut(f, "=")
				if !ok || k != "type" {
					return fmt.Errorf("filter %q: want type=service|task|node|sync", f)
				}
				types = append(types, v)
			}
			if len(types) > 0 {
				q.Set("type", strings.Join(types, ","))
			}
			if since != "" {
				q.Set("since", since)
			}
			ctx := cmd.Context()
			if until > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, until)
				defer cancel()
			}
			body, err := newAPIClient(cmd).Events(ctx, q)
			if err != nil {
				return err
			}
			defer body.Close()
			sc := bufio.NewScanner(body)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			w := cmd.OutOrStdout()
			for sc.Scan() {
				if format == outJSON {
					fmt.Fprintln(w, sc.Text())
					continue
				}
				var e controlapi.Event
				if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
					return fmt.Errorf("event stream: %w", err)
				}
				fmt.Fprintln(w, eventLine(e))
			}
			if ctx.Err() != nil {
				return nil // --until, or interrupted
			}
			if err := sc.Err(); err != nil {
				return fmt.Errorf("event stream: %w", err)
			}
			return fmt.Errorf("the manager ended the event stream")
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "first print what changed since then: a duration (10m) or a time (RFC 3339)")
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "only events of a type: type=service|task|node|sync (repeat)")
	cmd.Flags().DurationVar(&until, "until", 0, "stop after this long (default: until interrupted)")
	addOutputFlag(cmd)
	return cmd
}

// eventLine is an event as docker events prints one: time, type, action,
// name, then what it says.
func eventLine(e controlapi.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", e.Time.UTC().Format(time.RFC3339), e.Type, e.Action)
	if e.Name != "" {
		b.WriteString(" " + e.Name)
	}
	if e.Type == controlapi.EventTask && e.Node != "" {
		b.WriteString(" on " + shortID(e.Node))
	}
	if e.State != "" {
		b.WriteString(" " + e.State)
	}
	if e.Desired != "" && e.Desired != e.State {
		b.WriteString(" (desired " + e.Desired + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Replayed {
		b.WriteString(" [since]")
	}
	return b.String()
}
