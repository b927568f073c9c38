package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/secrets"
	"github.com/spf13/cobra"
)

// recipientFile is where a repository keeps its cluster's public recipient.
const recipientFile = ".gitorc/recipient.txt"

func newSealCmd() *cobra.Command {
	var recipient, out string
	cmd := &cobra.Command{
		Use:   "seal [FILE|-] -o FILE.age",
		Short: "Encrypt a secret for the cluster, to commit it to Git",
		Long: `Seals a secret's plaintext (a file, or standard input) with the cluster's public
age recipient. Only the cluster's managers can open the result; commit it and refer
to it from a stack: secrets: { db_password: { file: ./db_password.age } }.

The recipient is --recipient, or else the first ` + recipientFile + ` found in the
output file's directory or above (bootstrap writes it).

-o is the sealed file, as age's -o; the output format is --output (no short form).
With --output json and -o FILE: {"output": FILE, "recipients": ["age1…"]} on
standard output; the plaintext and the sealed content are never printed.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return fmt.Errorf("%w: it is the output format; the sealed file is -o/--out", err)
			}
			if format == outJSON && (out == "" || out == "-") {
				return errors.New("--output json needs -o FILE: the sealed file would go to standard output")
			}
			if recipient == "" {
				start := out
				if start == "" {
					start = "."
				}
				r, err := findRecipient(start)
				if err != nil {
					return err
				}
				recipient = r
			}
			var in io.Reader = cmd.InOrStdin()
			if len(args) == 1 && args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			plain, err := io.ReadAll(io.LimitReader(in, secrets.MaxSecretSize+1))
			if err != nil {
				return fmt.Errorf("read secret: %w", err)
			}
			sealed, err := secrets.Seal(recipient, api.SecretBytes(plain))
			clear(plain)
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(sealed)
				return err
			}
			if err := os.WriteFile(out, sealed, 0o644); err != nil {
				return err
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), sealReport{Output: out, Recipients: []string{recipient}})
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "sealed %s for %s\n", out, recipient)
			return nil
		},
	}
	cmd.Flags().StringVar(&recipient, "recipient", "", "the cluster's age recipient (age1…)")
	cmd.Flags().StringVarP(&out, "out", "o", "", "write the sealed file here (default: standard output)")
	// -o is taken by the sealed file (as age's): the format has the long
	// form only.
	cmd.Flags().String("output", "", "output format: text or json (json needs -o FILE)")
	return cmd
}

// sealReport is gitorc seal --output json: the sealed file written, and
// the public recipients it was sealed for. It holds neither the
// plaintext nor the sealed content.
type sealReport struct {
	Output     string   `json:"output"`
	Recipients []string `json:"recipients"`
}

// findRecipient looks for .gitorc/recipient.txt from path upwards.
func findRecipient(path string) (string, error) {
	dir, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		dir = filepath.Dir(dir)
	}
	for {
		f, err := os.Open(filepath.Join(dir, recipientFile))
		if err == nil {
			defer f.Close()
			r, err := secrets.ReadRecipientFile(f)
			if err != nil {
				return "", fmt.Errorf("%s: %w", filepath.Join(dir, recipientFile), err)
			}
			return r, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no recipient: pass --recipient age1…, or run inside a repository holding " + recipientFile)
		}
		dir = parent
	}
}
