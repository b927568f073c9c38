package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/spf13/cobra"
)

func newRegistryCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "registry",
		Aliases: []string{"registries"},
		Short:   "Credentials for private registries, as docker login keeps them",
		Long: `Logins are stored in the cluster's replicated store, encrypted like every secret, and
given over each node's mutual-TLS session only to the workers whose tasks pull from
that registry, which keep them in memory: no node writes them to disk in clear.
--insecure-registry (bootstrap, join) is still how a plain-HTTP registry is named.`,
	}
	var user string
	var passwordStdin bool
	var dockerConfig string
	login := &cobra.Command{
		Use:   "login [HOST] -u USER --password-stdin | login --docker-config FILE",
		Short: "Set the login for a registry host (the password on standard input), or import a docker config.json",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			logins := map[string]controlapi.RegistryLoginRequest{}
			switch {
			case dockerConfig != "":
				if len(args) > 0 || user != "" || passwordStdin {
					return errors.New("--docker-config imports every login of the file: give no HOST, -u or --password-stdin with it")
				}
				if logins, err = readDockerConfig(dockerConfig); err != nil {
					return err
				}
			case len(args) == 1:
				if user == "" || !passwordStdin {
					return errors.New("give the user with -u and the password on standard input with --password-stdin (never on the command line)")
				}
				b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<10))
				if err != nil {
					return err
				}
				pw := strings.TrimRight(string(b), "\r\n")
				if pw == "" {
					return errors.New("no password on standard input")
				}
				logins[args[0]] = controlapi.RegistryLoginRequest{Username: user, Password: pw}
			default:
				return errors.New("name the registry HOST, or import a docker config.json with --docker-config FILE")
			}
			hosts := make([]string, 0, len(logins))
			for h := range logins {
				hosts = append(hosts, h)
			}
			sort.Strings(hosts)
			c := newAPIClient(cmd)
			var out []controlapi.Registry
			for _, h := range hosts {
				r, err := c.LoginRegistry(cmd.Context(), h, logins[h])
				if err != nil {
					return err
				}
				out = append(out, r)
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			for _, r := range out {
				fmt.Fprintf(cmd.OutOrStdout(), "login for %s set (user %s)\n", r.Host, r.Username)
			}
			return nil
		},
	}
	login.Flags().StringVarP(&user, "username", "u", "", "user name")
	login.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password (or token) from standard input")
	login.Flags().StringVar(&dockerConfig, "docker-config", "", "import the logins of a docker config.json (auths: auth, or username and password)")
	addOutputFlag(login)
	logout := &cobra.Command{
		Use:   "logout HOST",
		Short: "Remove a registry's login",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			r, err := newAPIClient(cmd).LogoutRegistry(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), r)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "login for %s removed\n", r.Host)
			return nil
		},
	}
	addOutputFlag(logout)
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List registry logins (hosts and users, never passwords)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			regs, err := newAPIClient(cmd).Registries(cmd.Context())
			if err != nil {
				return err
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), regs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "HOST\tUSER\tUPDATED")
			for _, r := range regs {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Host, r.Username, age(r.UpdatedAt))
			}
			return tw.Flush()
		},
	}
	addOutputFlag(ls)
	cmd.AddCommand(login, logout, ls)
	return cmd
}

// readDockerConfig reads the logins of a docker config.json: each auths
// entry's "auth" (base64 of user:password) or username and password. A
// key names the registry as docker does ("https://index.docker.io/v1/",
// "registry.example.com:5000").
func readDockerConfig(path string) (map[string]controlapi.RegistryLoginRequest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Auths map[string]struct {
			Auth     string `json:"auth"`
			Username string `json:"username"`
			Password string `json:"password"`
		} `json:"auths"`
		CredsStore string `json:"credsStore"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%s: not a docker config.json: %v", path, err)
	}
	out := map[string]controlapi.RegistryLoginRequest{}
	for key, a := range cfg.Auths {
		l := controlapi.RegistryLoginRequest{Username: a.Username, Password: a.Password}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			user, pass, ok := strings.Cut(string(raw), ":")
			if err != nil || !ok {
				return nil, fmt.Errorf("%s: auths.%s.auth is not base64 of user:password", path, key)
			}
			l = controlapi.RegistryLoginRequest{Username: user, Password: pass}
		}
		if l.Username == "" || l.Password == "" {
			continue // kept by a credential helper, not in the file
		}
		out[dockerHost(key)] = l
	}
	if len(out) == 0 {
		why := "no auths with a user and password"
		if cfg.CredsStore != "" {
			why += fmt.Sprintf(" (they are in the credential store %q: docker login writes them there)", cfg.CredsStore)
		}
		return nil, fmt.Errorf("%s: %s", path, why)
	}
	return out, nil
}

// dockerHost is the registry host a docker config.json key names, as
// image pulls ask for it.
func dockerHost(key string) string {
	h := strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	if h == "index.docker.io" || h == "docker.io" {
		return "registry-1.docker.io"
	}
	return h
}
