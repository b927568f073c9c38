package main

import (
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/spf13/cobra"
)

func newPsCmd() *cobra.Command {
	var (
		node  string
		quiet bool
	)
	cmd := &cobra.Command{
		Use:   "ps [SERVICE|STACK]",
		Short: "List tasks: where they run, their desired and current state, and why they fail",
		Long: `Lists the tasks of a service, of every service of a stack, or of the whole
cluster, with their history: desired and current state, node, age of the
current state, and the error or reason (e.g. "no suitable node: …"). A
slot's earlier tasks (stopped, or failed and replaced: desired shutdown)
follow its current one as " \_ service.slot" lines, as docker service ps
shows them.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := ""
			if len(args) == 1 {
				target = args[0]
			}
			if quiet {
				return listRunningIDs(cmd, target, node)
			}
			return listTasks(cmd, target, "", node)
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "only tasks on this node")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the full IDs of the tasks that run (current and desired state running), one per line")
	addOutputFlag(cmd)
	return cmd
}

// listRunningIDs prints the IDs of the running tasks that ps would list.
func listRunningIDs(cmd *cobra.Command, target, node string) error {
	tasks, err := findTasks(cmd, newAPIClient(cmd), target, "", node)
	if err != nil {
		return err
	}
	for _, t := range tasks {
		if t.DesiredState == api.TaskRunning && t.Status.State == api.TaskRunning {
			fmt.Fprintln(cmd.OutOrStdout(), t.ID)
		}
	}
	return nil
}

// findTasks returns the tasks of a service or stack (target, tried in
// that order), or of the stack named by stack, or all, optionally on one
// node.
func findTasks(cmd *cobra.Command, c *client.Client, target, stack, node string) ([]controlapi.Task, error) {
	get := func(f client.TaskFilter) ([]controlapi.Task, error) {
		f.Node = node
		return c.Tasks(cmd.Context(), f)
	}
	switch {
	case stack != "":
		return get(client.TaskFilter{Stack: stack})
	case target != "":
		tasks, err := get(client.TaskFilter{Service: target})
		if code, msg := apiStatus(err); code == http.StatusNotFound && msg == fmt.Sprintf("service %q not found", target) {
			tasks, err = get(client.TaskFilter{Stack: target})
			if code, msg := apiStatus(err); code == http.StatusNotFound && msg == fmt.Sprintf("stack %q not found", target) {
				err = fmt.Errorf("no service or stack named %q", target)
			}
		}
		return tasks, err
	}
	return get(client.TaskFilter{})
}

// listTasks prints the tasks of a service or stack (target, tried in that
// order), or of the stack named by stack, or all, optionally on one node.
func listTasks(cmd *cobra.Command, target, stack, node string) error {
	format, err := outputFormat(cmd, outText, outText, outJSON)
	if err != nil {
		return err
	}
	c := newAPIClient(cmd)
	tasks, err := findTasks(cmd, c, target, stack, node)
	if err != nil {
		return err
	}
	if format == outJSON {
		return writeJSON(cmd.OutOrStdout(), tasks)
	}
	// The rollouts of the services listed, above their tasks.
	svcs, err := getServices(cmd, c)
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, t := range tasks {
		listed[t.ServiceID] = true
	}
	hostPorts := map[string]string{}
	for _, s := range svcs {
		hostPorts[s.ID] = taskPorts(s.Service)
	}
	shown := svcs[:0]
	for _, s := range svcs {
		// A service held by depends_on has no task yet: show it too.
		named := node == "" && (target == "" && stack == "" || s.Spec.Name == target || s.Spec.Stack == target || s.Spec.Stack == stack)
		if listed[s.ID] || named {
			shown = append(shown, s)
		}
	}
	for _, line := range rollouts(shown, now()) {
		fmt.Fprintln(cmd.OutOrStdout(), line)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tIMAGE\tNODE\tADDRESS\tPORTS\tDESIRED\tCURRENT\tAGE\tERROR")
	for _, line := range taskLines(tasks) {
		t, name := line.task, line.name
		pub := ""
		if t.DesiredState == api.TaskRunning && t.NodeName != "" {
			pub = hostPorts[t.ServiceID]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", shortID(t.ID), name, t.Spec.Container.Image, orDash(t.NodeName),
			orDash(t.Addr), orDash(pub), t.DesiredState, t.Status.State, age(t.Status.Timestamp), orDash(taskReason(&t.Task)))
	}
	return tw.Flush()
}

// taskLine is a task as ps lists it, with its NAME cell.
type taskLine struct {
	task controlapi.Task
	name string
}

// taskLines names the tasks as docker service ps does: "service.slot" (or
// "service.node" for a global service); the API lists a slot's tasks
// together, the one wanted there first, then its history newest first,
// and the history's lines are indented as " \_ service.slot".
func taskLines(tasks []controlapi.Task) []taskLine {
	out := make([]taskLine, 0, len(tasks))
	prev := ""
	for _, t := range tasks {
		name := fmt.Sprintf("%s.%d", t.ServiceName, t.Slot)
		if t.Slot == 0 {
			name = t.ServiceName + "." + orDash(t.NodeName)
		}
		shown := name
		if name == prev {
			shown = ` \_ ` + name
		}
		prev = name
		out = append(out, taskLine{t, shown})
	}
	return out
}

// taskPorts are the host-mode ports a task of s publishes on its node, as
// docker service ps shows them (*:5353->53/udp: every address of the
// task's node); ingress ports answer on every node and belong to the
// service (service ls), not to a task.
func taskPorts(s api.Service) string {
	ps := s.Spec.Endpoint.Ports
	if s.Endpoint != nil && len(s.Endpoint.Ports) > 0 {
		ps = s.Endpoint.Ports
	}
	var out []string
	for _, p := range ps {
		if p.Mode == api.PublishHost && p.Published != 0 {
			out = append(out, fmt.Sprintf("*:%d->%d/%s", p.Published, p.Target, p.Protocol))
		}
	}
	return strings.Join(out, ",")
}

// taskReason is what a user needs to know about a task that is not simply
// running: its error, the message of a task that is not running, or that
// it is draining (out of the load balancer, about to be stopped).
func taskReason(t *api.Task) string {
	if t.Status.Err != "" {
		return t.Status.Err
	}
	if t.Status.State != api.TaskRunning {
		return t.Status.Message
	}
	if t.Status.Warning != "" {
		return "warning: " + t.Status.Warning
	}
	if !t.DrainingSince.IsZero() && t.DesiredState == api.TaskRunning {
		return "draining: out of the load balancer, to be replaced"
	}
	return ""
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
