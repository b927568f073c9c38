package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/spf13/cobra"
)

func newAdminCertCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin-cert",
		Short: "Admin client certificates: the CLI's access to the managers' API from elsewhere",
		Long: `An admin certificate opens a manager's control API on its API port (default 4270)
over mutual TLS: gitorc --host tcp://MANAGER:4270 --tls-dir DIR, or a context
(gitorc context create). Node certificates do not open it. Revoking a certificate
takes effect on every manager as soon as the revocation is replicated.`,
	}
	var ttl time.Duration
	var out string
	issue := &cobra.Command{
		Use:   "issue NAME --out DIR [--ttl 2160h]",
		Short: "Make a key here and have the cluster's CA sign its certificate; writes DIR/{ca,cert,key}.pem",
		Long: `Makes a P-256 key on this machine and sends only a certificate request: the key
never reaches the managers. Writes DIR/ca.pem (the cluster's CA), DIR/cert.pem and
DIR/key.pem (mode 0600). Run it on a manager as root (the local socket), or with
another admin certificate.

With -o json: {"name", "serial", "not_before", "not_after", "state", "dir", "managers"}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			name := args[0]
			if out == "" {
				return errors.New("give --out DIR: where ca.pem, cert.pem and key.pem go")
			}
			for _, f := range []string{tlsCAFile, tlsCertFile, tlsKeyFile} {
				if _, err := os.Stat(filepath.Join(out, f)); err == nil {
					return fmt.Errorf("%s exists: give another --out, or remove it first", filepath.Join(out, f))
				}
			}
			csr, key, err := ca.NewAdminCSR(name)
			if err != nil {
				return err
			}
			req := controlapi.AdminIssueRequest{Name: name, CSR: string(csr)}
			if ttl != 0 {
				req.TTL = ttl.String()
			}
			got, err := newAPIClient(cmd).IssueAdminCert(cmd.Context(), req)
			if err != nil {
				return err
			}
			if err := writeTLSDir(out, []byte(got.CA), []byte(got.Cert), key); err != nil {
				return err
			}
			dir, _ := filepath.Abs(out)
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), struct {
					controlapi.AdminCertReport
					Dir      string   `json:"dir"`
					Managers []string `json:"managers"`
				}{got.AdminCertReport, dir, got.Managers})
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "admin certificate %s (serial %s), valid until %s, in %s\n", got.Name, got.Serial,
				got.NotAfter.UTC().Format(time.RFC3339), dir)
			host := "MANAGER:" + defaultAPIPort
			if len(got.Managers) > 0 {
				host = got.Managers[0]
			}
			fmt.Fprintf(w, "use it with:\n  gitorc context create %s --host tcp://%s --tls-dir %s\n  gitorc context use %s\n", name, host, dir, name)
			return nil
		},
	}
	issue.Flags().DurationVar(&ttl, "ttl", 0, "lifetime of the certificate (default 2160h, 90 days)")
	issue.Flags().StringVar(&out, "out", "", "directory to write ca.pem, cert.pem and key.pem to")
	addOutputFlag(issue)

	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the admin certificates the cluster issued, with their state",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			certs, err := newAPIClient(cmd).AdminCerts(cmd.Context())
			if err != nil {
				return err
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), certs)
			}
			return printAdminCerts(cmd.OutOrStdout(), certs)
		},
	}
	addOutputFlag(ls)

	revoke := &cobra.Command{
		Use:   "revoke NAME|SERIAL",
		Short: "Revoke an admin certificate (by serial), or every one of a name",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			certs, err := newAPIClient(cmd).RevokeAdminCert(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), certs)
			}
			for _, c := range certs {
				fmt.Fprintf(cmd.OutOrStdout(), "revoked %s (serial %s)\n", c.Name, c.Serial)
			}
			return nil
		},
	}
	addOutputFlag(revoke)
	cmd.AddCommand(issue, ls, revoke)
	return cmd
}

func printAdminCerts(w io.Writer, certs []controlapi.AdminCertReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSERIAL\tSTATE\tEXPIRES")
	for _, c := range certs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.Serial, c.State, c.NotAfter.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

// writeTLSDir writes a TLS directory: the key 0600, the rest 0644.
func writeTLSDir(dir string, caPEM, certPEM, keyPEM []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		b    []byte
		mode os.FileMode
	}{{tlsKeyFile, keyPEM, 0o600}, {tlsCertFile, certPEM, 0o644}, {tlsCAFile, caPEM, 0o644}} {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.b, f.mode); err != nil {
			return err
		}
	}
	return nil
}
