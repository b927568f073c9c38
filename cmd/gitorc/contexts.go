package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/spf13/cobra"
)

// Contexts are named targets, as docker context keeps them: a manager's
// host and the TLS directory of an admin certificate. They live in
// contexts.json of the config directory ($GITORC_CONFIG, or gitorc under
// the user's config directory, ~/.config/gitorc), with the current one.

// defaultContext is the local socket; it cannot be created or removed.
const defaultContext = "default"

// cliContext is one named target.
type cliContext struct {
	Name   string `json:"name"`
	Host   string `json:"host"`
	TLSDir string `json:"tls_dir,omitempty"`
}

// contextsFile is contexts.json.
type contextsFile struct {
	Current  string       `json:"current,omitempty"`
	Contexts []cliContext `json:"contexts"`
}

// find returns the context named name, nil for none or the default.
func (f *contextsFile) find(name string) *cliContext {
	for i := range f.Contexts {
		if f.Contexts[i].Name == name {
			return &f.Contexts[i]
		}
	}
	return nil
}

// configDir is the CLI's config directory.
func configDir() (string, error) {
	if d := os.Getenv("GITORC_CONFIG"); d != "" {
		return d, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory (set GITORC_CONFIG): %w", err)
	}
	return filepath.Join(d, "gitorc"), nil
}

func contextsPath() (string, error) {
	d, err := configDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "contexts.json"), nil
}

// loadContexts reads contexts.json; a missing file is no contexts.
func loadContexts() (*contextsFile, error) {
	p, err := contextsPath()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return &contextsFile{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("contexts: %w", err)
	}
	var f contextsFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("contexts: %s: %w", p, err)
	}
	return &f, nil
}

func saveContexts(f *contextsFile) error {
	p, err := contextsPath()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("contexts: %w", err)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(p, append(b, '\n'), 0o600)
}

// contextReport is a context as context ls|create|use|rm -o json print it.
type contextReport struct {
	Name    string `json:"name"`
	Host    string `json:"host"`
	TLSDir  string `json:"tls_dir,omitempty"`
	Current bool   `json:"current"`
}

func reportOf(f *contextsFile, c cliContext) contextReport {
	cur := f.Current == c.Name || (c.Name == defaultContext && f.find(f.Current) == nil)
	return contextReport{Name: c.Name, Host: c.Host, TLSDir: c.TLSDir, Current: cur}
}

// all lists the default context, then the others by name.
func (f *contextsFile) all() []contextReport {
	out := []contextReport{reportOf(f, cliContext{Name: defaultContext, Host: "unix://" + defaultSocket})}
	cs := slices.Clone(f.Contexts)
	slices.SortFunc(cs, func(a, b cliContext) int { return strings.Compare(a.Name, b.Name) })
	for _, c := range cs {
		out = append(out, reportOf(f, c))
	}
	return out
}

func newContextCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "context",
		Short: "Named targets for the CLI: a manager's host and an admin certificate",
		Long: `A context names a manager's API (--host tcp://ADDR:PORT) and the TLS directory of an
admin certificate (gitorc admin-cert issue --out DIR), as docker context does. Commands
go to the current context unless --host, GITORC_HOST, --socket or GITORC_SOCKET say
otherwise; the "default" context is the local control socket. Contexts are kept in
contexts.json under $GITORC_CONFIG (default ~/.config/gitorc).`,
	}
	var host, tlsDir string
	create := &cobra.Command{
		Use:   "create NAME --host tcp://ADDR:PORT --tls-dir DIR",
		Short: "Create a context",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			name := args[0]
			if name == defaultContext || !adminNameOK(name) {
				return fmt.Errorf("context name %q: want letters, digits, '.', '_' and '-', and not %q", name, defaultContext)
			}
			addr, socket, err := parseHosts(host)
			if err != nil {
				return err
			}
			c := cliContext{Name: name, Host: "tcp://" + addr}
			if socket != "" {
				c.Host = "unix://" + socket
			} else {
				if tlsDir == "" {
					return errors.New("a tcp host needs --tls-dir DIR: the admin certificate gitorc admin-cert issue --out DIR wrote")
				}
				if c.TLSDir, err = filepath.Abs(tlsDir); err != nil {
					return err
				}
				if _, _, err := tlsFiles(c.TLSDir); err != nil {
					return err
				}
			}
			f, err := loadContexts()
			if err != nil {
				return err
			}
			if f.find(name) != nil {
				return fmt.Errorf("context %s exists: gitorc context rm %s first", name, name)
			}
			f.Contexts = append(f.Contexts, c)
			if err := saveContexts(f); err != nil {
				return err
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), reportOf(f, c))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "context %s: %s\nuse it with: gitorc context use %s\n", name, c.Host, name)
			return nil
		},
	}
	create.Flags().StringVar(&host, "host", "", "the manager's API: tcp://ADDR:PORT, or several managers comma-separated (tried in turn when one cannot be reached), or unix:///PATH")
	create.Flags().StringVar(&tlsDir, "tls-dir", "", "directory with ca.pem, cert.pem and key.pem of an admin certificate")
	_ = create.MarkFlagRequired("host")
	addOutputFlag(create)

	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List contexts; * marks the current one",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			f, err := loadContexts()
			if err != nil {
				return err
			}
			all := f.all()
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), all)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tHOST\tTLS DIR")
			for _, c := range all {
				name := c.Name
				if c.Current {
					name += " *"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", name, c.Host, orDash(c.TLSDir))
			}
			return w.Flush()
		},
	}
	addOutputFlag(ls)

	use := &cobra.Command{
		Use:   "use NAME",
		Short: `Make a context the current one ("default": the local socket)`,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			f, err := loadContexts()
			if err != nil {
				return err
			}
			name := args[0]
			if name == defaultContext {
				f.Current = ""
			} else if f.find(name) == nil {
				return fmt.Errorf("no context %s: see gitorc context ls", name)
			} else {
				f.Current = name
			}
			if err := saveContexts(f); err != nil {
				return err
			}
			var rep contextReport
			for _, c := range f.all() {
				if c.Name == name {
					rep = c
				}
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "current context: %s (%s)\n", rep.Name, rep.Host)
			return nil
		},
	}
	addOutputFlag(use)

	rm := &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove"},
		Short:   "Remove contexts (the current one only with --force; the default never)",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			force, _ := cmd.Flags().GetBool("force")
			f, err := loadContexts()
			if err != nil {
				return err
			}
			var done []contextReport
			err = func() error {
				for _, name := range args {
					c := f.find(name)
					switch {
					case name == defaultContext:
						return errors.New("the default context (the local socket) cannot be removed")
					case c == nil:
						return fmt.Errorf("no context %s", name)
					case f.Current == name && !force:
						return fmt.Errorf("context %s is the current one: gitorc context use default first, or --force", name)
					}
					rep := reportOf(f, *c)
					if f.Current == name {
						f.Current = ""
					}
					f.Contexts = slices.DeleteFunc(f.Contexts, func(x cliContext) bool { return x.Name == name })
					if err := saveContexts(f); err != nil {
						return err
					}
					done = append(done, rep)
					if format != outJSON {
						fmt.Fprintln(cmd.OutOrStdout(), name)
					}
				}
				return nil
			}()
			if format == outJSON {
				return writeDoneThen(cmd, done, err)
			}
			return err
		},
	}
	rm.Flags().BoolP("force", "f", false, "remove the current context too (the local socket becomes current)")
	addOutputFlag(rm)

	cmd.AddCommand(create, ls, use, rm)
	return cmd
}

// adminNameOK reports whether a name fits contexts and admin certificates.
func adminNameOK(name string) bool { return ca.ValidAdminName(name) == nil }

// writeFileAtomic writes a file by renaming a complete copy into place.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
