package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// versionReport is gitorc version -o json.
type versionReport struct {
	Version string `json:"version"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
	Go      string `json:"go"` // the Go release it was built with
}

func newVersionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the gitorc version",
		Long: `Prints the gitorc version, platform and Go release.
With -o json: {"version", "os", "arch", "go"}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), versionReport{Version: version, OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version()})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "gitorc %s %s/%s %s\n", version, runtime.GOOS, runtime.GOARCH, runtime.Version())
			return err
		},
	}
	addOutputFlag(cmd)
	return cmd
}
