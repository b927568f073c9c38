package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/spf13/cobra"
)

// printUnlockKey tells the operator the key, once.
func printUnlockKey(w io.Writer, key string) {
	fmt.Fprintf(w, "Autolock is on. A manager that restarts stays locked until it is given this key with gitorc unlock;\n"+
		"keep it safe, outside the cluster (gitorc unlock-key shows it again on an unlocked manager):\n\n    %s\n\n", key)
}

func newUnlockCmd() *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:   "unlock",
		Short: "Give a locked manager (autolock) its unlock key",
		Long: `Reads the unlock key from standard input (or --key-file) and gives it to this
node's manager, which then opens its store and starts. A wrong key is refused and
the manager stays locked.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			if isRemote(cmd) {
				return fmt.Errorf("gitorc unlock: %w", errNodeLocal)
			}
			var in io.Reader = cmd.InOrStdin()
			if keyFile != "" && keyFile != "-" {
				f, err := os.Open(keyFile)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			line, rerr := bufio.NewReader(io.LimitReader(in, 4<<10)).ReadString('\n')
			if rerr != nil && !errors.Is(rerr, io.EOF) {
				return rerr
			}
			key := strings.TrimSpace(line)
			if key == "" {
				return errors.New("gitorc unlock: no key given: pipe it on standard input or give --key-file")
			}
			rep, err := newAPIClient(cmd).Unlock(cmd.Context(), key)
			if err != nil {
				return err
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "manager unlocked: node %s starts\n", rep.Node)
			return err
		},
	}
	cmd.Flags().StringVar(&keyFile, "key-file", "", "file holding the unlock key (- for standard input, the default)")
	addOutputFlag(cmd)
	return cmd
}

func newUnlockKeyCmd() *cobra.Command {
	var rotate, quiet bool
	cmd := &cobra.Command{
		Use:   "unlock-key",
		Short: "Show (or rotate) the cluster's unlock key (autolock)",
		Long: `Prints the key that unlocks the cluster's managers after a restart. With --rotate, a
new key replaces it: every running manager seals its data key with the new one at once,
and only the new key unlocks them afterwards. -q prints the key alone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			var rep controlapi.UnlockKeyReport
			c := newAPIClient(cmd)
			if rotate {
				rep, err = c.RotateUnlockKey(cmd.Context())
			} else {
				rep, err = c.UnlockKey(cmd.Context())
			}
			if err != nil {
				return err
			}
			switch {
			case format == outJSON:
				return writeJSON(cmd.OutOrStdout(), rep)
			case !rep.Autolock:
				return errors.New("autolock is off: turn it on with gitorc cluster update --autolock=true")
			case quiet:
				_, err = fmt.Fprintln(cmd.OutOrStdout(), rep.Key)
				return err
			}
			printUnlockKey(cmd.OutOrStdout(), rep.Key)
			return nil
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "replace the key by a new one")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print the key alone")
	addOutputFlag(cmd)
	return cmd
}

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Cluster-wide settings"}
	var autolock bool
	update := &cobra.Command{
		Use:   "update",
		Short: "Change cluster-wide settings (--autolock)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("autolock") {
				return errors.New("gitorc cluster update: nothing to change: give --autolock=true|false")
			}
			rep, err := newAPIClient(cmd).SetAutolock(cmd.Context(), autolock)
			if err != nil {
				return err
			}
			switch {
			case format == outJSON:
				return writeJSON(cmd.OutOrStdout(), rep)
			case rep.Key != "":
				printUnlockKey(cmd.OutOrStdout(), rep.Key)
			case rep.Autolock:
				fmt.Fprintln(cmd.OutOrStdout(), "autolock is on already (gitorc unlock-key shows the key)")
			default:
				fmt.Fprintln(cmd.OutOrStdout(), "autolock is off: managers keep their data key unsealed")
			}
			return nil
		},
	}
	update.Flags().BoolVar(&autolock, "autolock", false, "lock managers that restart until they get the unlock key (true|false)")
	addOutputFlag(update)
	cmd.AddCommand(update)
	return cmd
}
