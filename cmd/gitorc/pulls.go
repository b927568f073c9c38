package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
)

// pullWatch prints the image pulls of the cluster as they progress, a
// line per node and image when its progress changes (what the tasks that
// prepare report: agent.WithProgress), for the commands that wait for a
// rollout.
type pullWatch struct {
	last map[string]string // node ID|image: the line printed last
}

// poll prints what changed since the last poll; an unreachable API
// prints nothing (the caller's loop tells about that).
func (p *pullWatch) poll(ctx context.Context, c *client.Client, w io.Writer) {
	tasks, err := c.Tasks(ctx, client.TaskFilter{})
	if err != nil {
		return
	}
	if p.last == nil {
		p.last = map[string]string{}
	}
	var lines []string
	for _, t := range tasks {
		if t.Status.State != api.TaskPreparing || !strings.HasPrefix(t.Status.Message, "pulling ") {
			continue
		}
		// Hosts may share a name: the node's ID tells them apart.
		node := shortID(t.NodeID)
		if t.NodeName != "" {
			node = t.NodeName + " (" + node + ")"
		}
		key := t.NodeID + "|" + t.Spec.Container.Image
		if p.last[key] == t.Status.Message {
			continue
		}
		p.last[key] = t.Status.Message
		lines = append(lines, fmt.Sprintf("  %s: %s", node, t.Status.Message))
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}
