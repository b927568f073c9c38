package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/gitorc/gitorc/cluster/node"
	"github.com/spf13/cobra"
)

func newImageCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage the images of this node",
	}
	cmd.AddCommand(newImageLoadCmd())
	return cmd
}

func newImageLoadCmd() *cobra.Command {
	var dataDir, address, name string
	cmd := &cobra.Command{
		Use:   "load FILE.tar",
		Short: "Import the images of an OCI or docker archive on this node",
		Long: `Imports the images of an OCI image layout or docker save archive into this
node's containerd (namespace gitorc) and unpacks them, for clusters without a
registry. Images are named after the archive's annotations or RepoTags;
--name names an archive that carries no name.

It uses the containerd at --containerd when it answers, else the node's own
(under --data-dir), starting it for the import when it is not running.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			ctx := cmd.Context()
			if format == outText {
				if fi, err := f.Stat(); err == nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "importing %s (%.1f MiB)\n", args[0], float64(fi.Size())/(1<<20))
				}
			}
			names, err := node.ImportImages(ctx, dataDir, address, f, name,
				slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn})))
			if err != nil {
				return err
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), struct {
					Images []string `json:"images"`
				}{names})
			}
			for _, n := range names {
				fmt.Fprintf(cmd.OutOrStdout(), "loaded %s\n", n)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "/var/lib/gitorc", "the node's data directory")
	cmd.Flags().StringVar(&address, "containerd", node.DefaultContainerd, "containerd socket to use when it answers")
	cmd.Flags().StringVar(&name, "name", "", "image name for an archive that names none")
	cmd.Flags().StringP("output", "o", "", "output format: text or json")
	return cmd
}
