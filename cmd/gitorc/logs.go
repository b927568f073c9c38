package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/spf13/cobra"
)

func newLogsCmd() *cobra.Command {
	var (
		follow, times bool
		tail, since   string
	)
	cmd := &cobra.Command{
		Use:   "logs SERVICE|TASK",
		Short: "Print the output of a service's tasks (or of one task), from every node, in time order",
		Long: `Prints what the tasks of a service (or one task) wrote on stdout and stderr,
read from the nodes that run them and merged by time, each line prefixed
as docker service logs does: "name.slot@node | " (a global service's task:
"name.node@node | "). Rotated log files are read too. Works on any manager.

With -f it follows: new output, and the output of tasks that start while it
runs (a rolling update or a scale shows up as it happens). A task whose node
is down is reported in one line on stderr; the others still print.
-o json prints one JSON object a line: time, task, service, slot, node,
stream (stdout or stderr), line, and error for a task that cannot be read.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			q := url.Values{}
			if tail != "" && tail != "all" {
				if _, err := strconv.Atoi(tail); err != nil {
					return fmt.Errorf("--tail %q: want a number or all", tail)
				}
				q.Set("tail", tail)
			}
			if since != "" {
				t, err := parseSince(since, now())
				if err != nil {
					return err
				}
				q.Set("since", t.UTC().Format(time.RFC3339Nano))
			}
			if follow {
				q.Set("follow", "1")
			}
			return streamLogs(cmd, args[0], q, func(l api.LogLine) error {
				switch {
				case format == outJSON:
					b, err := json.Marshal(l)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
					return err
				case l.Error != "":
					fmt.Fprintln(cmd.ErrOrStderr(), l.Error)
					return nil
				}
				_, err := fmt.Fprintln(cmd.OutOrStdout(), formatLogLine(l, times))
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow: print new output, also of tasks that start meanwhile, until interrupted")
	cmd.Flags().BoolVarP(&times, "timestamps", "t", false, "print each line's time")
	cmd.Flags().StringVarP(&tail, "tail", "n", "all", "print the last N lines of each task")
	cmd.Flags().StringVar(&since, "since", "", "only lines after this time: RFC 3339 or a duration ago (10m)")
	addOutputFlag(cmd)
	return cmd
}

// formatLogLine is docker's "prefix | line", with -t the time first.
func formatLogLine(l api.LogLine, times bool) string {
	s := l.Prefix() + " | " + l.Line
	if times {
		s = l.Time.UTC().Format(time.RFC3339Nano) + " " + s
	}
	return s
}

// parseSince reads --since: a duration ago, or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration (10m) or an RFC 3339 time", s)
}

// streamLogs asks for ref as a service, then as a task, and hands each
// line to fn as it arrives.
func streamLogs(cmd *cobra.Command, ref string, q url.Values, fn func(api.LogLine) error) error {
	c := newAPIClient(cmd)
	for _, key := range []string{"service", "task"} {
		qq := url.Values{}
		for k, v := range q {
			qq[k] = v
		}
		qq.Set(key, ref)
		body, err := c.Logs(cmd.Context(), qq)
		if client.StatusOf(err) == http.StatusNotFound && key == "service" {
			continue
		}
		if err != nil {
			return err
		}
		err = readLogLines(body, fn)
		body.Close()
		if cmd.Context().Err() != nil {
			return nil
		}
		return err
	}
	return fmt.Errorf("no service or task %q", ref)
}

// readLogLines hands each line of a logs stream to fn; an error line
// (no task) ends the stream with its error.
func readLogLines(body io.Reader, fn func(api.LogLine) error) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l api.LogLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("GET /v1/logs: %w", err)
		}
		if l.Task == "" && l.Error != "" {
			return errors.New(l.Error)
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	return sc.Err()
}
