package main

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/api"
	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/server"
)

// apiFlags are how a command reaches a running server's admin API.
type apiFlags struct {
	server, username, password string
	passwordStdin              bool
	caCert                     string
	insecure                   bool
	json                       bool
}

func (f *apiFlags) register(cmd *cobra.Command) {
	p := cmd.PersistentFlags()
	p.StringVar(&f.server, "server", envOr("BERTH_SERVER", "http://127.0.0.1:5000"), "berth server URL (env BERTH_SERVER)")
	p.StringVarP(&f.username, "username", "u", envOr("BERTH_USERNAME", "admin"), "user to act as (env BERTH_USERNAME; default: the one 'berth login' stored, else admin)")
	p.StringVarP(&f.password, "password", "p", "", "password or robot secret (env BERTH_PASSWORD; default: what 'berth login' stored; prefer it or --password-stdin to keep it out of the process list)")
	p.BoolVar(&f.passwordStdin, "password-stdin", false, "read the password from standard input")
	p.StringVar(&f.caCert, "cacert", envOr("BERTH_CACERT", ""), "PEM certificate to trust for the server (e.g. <data>/tls/cert.pem of --tls-self-signed)")
	p.BoolVar(&f.insecure, "insecure-skip-tls-verify", false, "do not verify the server's certificate")
	p.BoolVar(&f.json, "json", false, "print JSON instead of a table")
}

// apiClient calls the admin API.
type apiClient struct {
	base     string
	host     string // the server's host:port, as 'berth login' names it
	user     string
	password string
	http     *http.Client
	// checkedAnonymous is set once a client without credentials has made
	// sure the server lets anonymous callers in (--no-auth).
	checkedAnonymous bool
}

// client reaches the server with credentials from, in order: --password,
// --password-stdin or BERTH_PASSWORD (as --username); else what 'berth
// login' stored for the server's host; else none, which only a server
// without authentication accepts.
func (f *apiFlags) client(cmd *cobra.Command) (*apiClient, error) {
	u, err := url.Parse(f.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want http://HOST:PORT or https://HOST:PORT", f.server)
	}
	user, password := f.username, f.password
	if password == "" {
		password = os.Getenv(loginPasswordEnv)
	}
	if f.passwordStdin {
		if password, err = readSecret(cmd.InOrStdin()); err != nil {
			return nil, err
		}
	}
	if password == "" {
		storedUser, storedPassword, err := storedLogin(u.Host)
		if err != nil {
			return nil, err
		}
		// An explicit --username names whom to act as: another user's
		// stored password is not sent for it.
		if storedPassword != "" && (!cmd.Flags().Changed("username") || storedUser == user) {
			user, password = storedUser, storedPassword
		}
	}
	tlsCfg := &tls.Config{InsecureSkipVerify: f.insecure}
	if f.caCert != "" {
		pem, err := os.ReadFile(f.caCert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", f.caCert)
		}
		tlsCfg.RootCAs = pool
	}
	return &apiClient{
		base: strings.TrimRight(f.server, "/") + api.Prefix, host: u.Host, user: user, password: password,
		http: &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment}},
	}, nil
}

// notLoggedIn is the error of a command run without credentials against
// a server that requires them.
func (c *apiClient) notLoggedIn() error {
	return fmt.Errorf("not logged in to %s: run 'berth login %s' (or set BERTH_PASSWORD, or give --password-stdin)", c.host, c.host)
}

// checkAnonymous refuses to go on without credentials unless the server
// lets anonymous callers in: otherwise a command would answer with what
// an anonymous caller may see (public projects only) and exit 0.
func (c *apiClient) checkAnonymous() error {
	if c.password != "" || c.checkedAnonymous {
		return nil
	}
	resp, err := c.http.Get(strings.TrimSuffix(c.base, api.Prefix) + "/v2/")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return c.notLoggedIn()
	}
	c.checkedAnonymous = true
	return nil
}

// call sends a request and decodes a JSON answer into out (if not nil).
func (c *apiClient) call(method, path string, body, out any) error {
	if err := c.checkAnonymous(); err != nil {
		return err
	}
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.password != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Code != "" {
			switch {
			case resp.StatusCode == http.StatusUnauthorized && c.password == "":
				return c.notLoggedIn()
			case resp.StatusCode == http.StatusUnauthorized:
				// The server does not say which: a disabled or expired
				// account reads the same.
				return fmt.Errorf("wrong username or password for %s at %s", c.user, c.host)
			}
			return fmt.Errorf("%s: %s", e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
		}
	}
	return nil
}

// printer writes either JSON or an aligned table.
type printer struct {
	cmd  *cobra.Command
	json bool
}

func (p printer) print(v any, header string, rows func(w io.Writer)) error {
	out := p.cmd.OutOrStdout()
	if p.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if header != "" {
		fmt.Fprintln(w, header)
	}
	rows(w)
	return w.Flush()
}

func newAdminCmd() *cobra.Command {
	f := &apiFlags{}
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Manage users, projects, members and robot accounts of a running berth",
		Long: `Manage users, projects, members, robot accounts and repositories through a
running server's admin API (/api/v1/). Log in once with 'berth login HOST';
or give --username (default admin) and the password in BERTH_PASSWORD, on
standard input (--password-stdin) or in --password.

unlock and reset-password work instead on a stopped server's data directory
(--data), for when no administrator can log in.`,
	}
	f.register(cmd)
	cmd.AddCommand(newAdminUserCmd(f), newAdminProjectCmd(f), newAdminMemberCmd(f), newAdminRobotCmd(f),
		newAdminRepoCmd(f), newAdminUnlockCmd(), newAdminResetPasswordCmd(f))
	return cmd
}

// openOfflineAuth opens a stopped server's accounts for the offline admin
// commands.
func openOfflineAuth(cmd *cobra.Command, dir string) (*server.Offline, error) {
	o, err := server.OpenOffline(cmd.Context(), dir)
	if errors.Is(err, server.ErrDataDirInUse) {
		return nil, fmt.Errorf("%w\nstop the server first: this command changes a stopped server's data directory", err)
	}
	return o, err
}

func newAdminUnlockCmd() *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "unlock USER --data DIR",
		Short: "Clear an account's login lockout in a stopped server's data directory",
		Long: `Clear the login lockout of USER (or robot$NAME) in the data directory of a
stopped server, for when failed logins (perhaps someone else's guesses) have
locked it out and no administrator can log in. Lockouts are kept in the data
directory, so restarting the server does not clear them; each also ends by
itself (the first after auth.login_lockout, 1m by default, doubling for each
lockout in a row).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := openOfflineAuth(cmd, data)
			if err != nil {
				return err
			}
			lo, err := auth.Unlock(cmd.Context(), o.Auth, args[0])
			if errors.Is(err, auth.ErrNotLocked) {
				fmt.Fprintf(cmd.OutOrStdout(), "%s is not locked out; nothing to do\n", args[0])
				return o.Close()
			}
			if err == nil {
				err = o.Record("user.unlock", "cleared the login lockout of "+args[0])
			}
			if err = errors.Join(err, o.Close()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "unlocked %s (it was locked out until %s, lockout %d in a row)\n",
				args[0], lo.Until.Format(time.RFC3339), lo.Level)
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "the stopped server's data directory")
	cmd.MarkFlagRequired("data")
	return cmd
}

// withClient runs fn with a client and a printer.
func withClient(f *apiFlags, fn func(c *apiClient, p printer, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := f.client(cmd)
		if err != nil {
			return err
		}
		return fn(c, printer{cmd: cmd, json: f.json}, cmd, args)
	}
}

// generatePassword makes a password for a user created without one.
func generatePassword() string {
	var b [18]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func userRows(users ...auth.User) func(io.Writer) {
	return func(w io.Writer) {
		for _, u := range users {
			cidrs := make([]string, len(u.AllowedCIDRs))
			for i, p := range u.AllowedCIDRs {
				cidrs[i] = p.String()
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", u.Name, yesNo(u.Admin), yesNo(u.Disabled), strings.Join(cidrs, ","), u.CreatedAt.Format(time.RFC3339))
		}
	}
}

const userHeader = "NAME\tADMIN\tDISABLED\tALLOWED CIDRS\tCREATED"

func newAdminUserCmd(f *apiFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage users"}
	var admin bool
	var cidrs []string
	var newPassword string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a user (its password from --new-password, or generated and printed once)",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(f, func(c *apiClient, p printer, cmd *cobra.Command, args []string) error {
			pw, generated := newPassword, false
			if pw == "" {
				pw, generated = generatePassword(), true
			}
			var u auth.User
			if err := c.call("POST", "/users", api.UserRequest{Name: args[0], Password: pw, Admin: admin, AllowedCIDRs: cidrs}, &u); err != nil {
				return err
			}
			if generated && !p.json {
				fmt.Fprintf(cmd.OutOrStdout(), "created user %s; its password (shown only now): %s\n", u.Name, pw)
				return nil
			}
			if generated {
				return p.print(map[string]any{"user": u, "password": pw}, "", nil)
			}
			return p.print(u, userHeader, userRows(u))
		}),
	}
	create.Flags().BoolVar(&admin, "admin", false, "make the user a system administrator")
	create.Flags().StringSliceVar(&cidrs, "allowed-cidr", nil, "only accept the user's logins from these CIDRs (repeatable)")
	create.Flags().StringVar(&newPassword, "new-password", "", "the new user's password (at least 8 characters)")

	var setAdmin, setDisabled bool
	var setCIDRs []string
	var setPassword string
	update := &cobra.Command{
		Use:   "update NAME",
		Short: "Change a user's password, administrator flag, disabled flag or allowed CIDRs",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(f, func(c *apiClient, p printer, cmd *cobra.Command, args []string) error {
			var req api.UserUpdate
			fl := cmd.Flags()
			if fl.Changed("admin") {
				req.Admin = &setAdmin
			}
			if fl.Changed("disabled") {
				req.Disabled = &setDisabled
			}
			if fl.Changed("allowed-cidr") {
				req.AllowedCIDRs = &setCIDRs
			}
			if fl.Changed("new-password") {
				req.Password = &setPassword
			}
			if req == (api.UserUpdate{}) {
				return errors.New("nothing to change: give --new-password, --admin, --disabled or --allowed-cidr")
			}
			var u auth.User
			if err := c.call("PATCH", "/users/"+url.PathEscape(args[0]), req, &u); err != nil {
				return err
			}
			return p.print(u, userHeader, userRows(u))
		}),
	}
	update.Flags().BoolVar(&setAdmin, "admin", false, "system administrator or not")
	update.Flags().BoolVar(&setDisabled, "disabled", false, "disable (or enable with =false) the user")
	update.Flags().StringSliceVar(&setCIDRs, "allowed-cidr", nil, "replace the allowed CIDRs (empty to allow every address)")
	update.Flags().StringVar(&setPassword, "new-password", "", "set a new password")

	cmd.AddCommand(
		&cobra.Command{
			Use: "list", Short: "List users", Args: cobra.NoArgs,
			RunE: withClient(f, func(c *apiClient, p printer, _ *cobra.Command, _ []string) error {
				var users []auth.User
				if err := c.call("GET", "/users", nil, &users); err != nil {
					return err
				}
				return p.print(users, userHeader, userRows(users...))
			}),
		},
		&cobra.Command{
			Use: "get NAME", Short: "Show a user", Args: cobra.ExactArgs(1),
			RunE: withClient(f, func(c *apiClient, p printer, _ *cobra.Command, args []string) error {
				var u auth.User
				if err := c.call("GET", "/users/"+url.PathEscape(args[0]), nil, &u); err != nil {
					return err
				}
				return p.print(u, userHeader, userRows(u))
			}),
		},
		create, update,
		&cobra.Command{
			Use: "delete NAME", Short: "Delete a user", Args: cobra.ExactArgs(1),
			RunE: withClient(f, func(c *apiClient, _ printer, cmd *cobra.Command, args []string) error {
				if err := c.call("DELETE", "/users/"+url.PathEscape(args[0]), nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted user %s\n", args[0])
				return nil
			}),
		},
	)
	return cmd
}

const projectHeader = "NAME\tPUBLIC\tAUTO SCAN\tCREATED BY\tCREATED"

func projectRows(ps ...auth.Project) func(io.Writer) {
	return func(w io.Writer) {
		for _, p := range ps {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", p.Name, yesNo(p.Public), yesNo(p.AutoScan), p.CreatedBy, p.CreatedAt.Format(time.RFC3339))
		}
	}
}

func newAdminProjectCmd(f *apiFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "project", Short: "Manage projects"}
	var public bool
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a project (private unless --public); you become its project admin", Args: cobra.ExactArgs(1),
		RunE: withClient(f, func(c *apiClient, p printer, _ *cobra.Command, args []string) error {
			var pr auth.Project
			if err := c.call("POST", "/projects", api.ProjectRequest{Name: args[0], Public: public}, &pr); err != nil {
				return err
			}
			return p.print(pr, projectHeader, projectRows(pr))
		}),
	}
	create.Flags().BoolVar(&public, "public", false, "anyone, anonymous included, may pull")
	var setPublic, setAutoScan bool
	update := &cobra.Command{
		Use: "update NAME [--public=true|false] [--auto-scan=true|false]", Short: "Make a project public or private, or turn scanning of its pushes on or off",
		Args: cobra.ExactArgs(1),
		RunE: withClient(f, func(c *apiClient, p printer, cmd *cobra.Command, args []string) error {
			var ch api.ProjectUpdate
			if cmd.Flags().Changed("public") {
				ch.Public = &setPublic
			}
			if cmd.Flags().Changed("auto-scan") {
				ch.AutoScan = &setAutoScan
			}
			if ch.Public == nil && ch.AutoScan == nil {
				return errors.New("nothing to change: give --public=true|false or --auto-scan=true|false")
			}
			var pr auth.Project
			if err := c.call("PATCH", "/projects/"+url.PathEscape(args[0]), ch, &pr); err != nil {
				return err
			}
			return p.print(pr, projectHeader, projectRows(pr))
		}),
	}
	update.Flags().BoolVar(&setPublic, "public", false, "public (true) or private (false)")
	update.Flags().BoolVar(&setAutoScan, "auto-scan", true, "scan images pushed to the project (true) or not (false)")
	var force bool
	del := &cobra.Command{
		Use: "delete NAME [--force]", Short: "Delete a project (with --force, its repositories first)", Args: cobra.ExactArgs(1),
		RunE: withClient(f, func(c *apiClient, _ printer, cmd *cobra.Command, args []string) error {
			project := args[0]
			if force {
				var rs []api.Repository
				if err := c.call("GET", "/projects/"+url.PathEscape(project)+"/repositories", nil, &rs); err != nil {
					return err
				}
				for _, r := range rs {
					if err := deleteRepository(c, cmd.OutOrStdout(), project, r.Name); err != nil {
						return fmt.Errorf("delete repository %s: %w", r.FullName, err)
					}
				}
			}
			if err := c.call("DELETE", "/projects/"+url.PathEscape(project), nil, nil); err != nil {
				if !force && strings.Contains(err.Error(), "CONFLICT") {
					return fmt.Errorf("%w\n--force deletes its repositories first", err)
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted project %s\n", project)
			return nil
		}),
	}
	del.Flags().BoolVar(&force, "force", false, "delete the project's repositories (every artifact in them) first")
	cmd.AddCommand(
		&cobra.Command{
			Use: "list", Short: "List the projects you can see", Args: cobra.NoArgs,
			RunE: withClient(f, func(c *apiClient, p printer, _ *cobra.Command, _ []string) error {
				var ps []auth.Project
				if err := c.call("GET", "/projects", nil, &ps); err != nil {
					return err
				}
				return p.print(ps, projectHeader, projectRows(ps...))
			}),
		},
		&cobra.Command{
			Use: "get NAME", Short: "Show a project", Args: cobra.ExactArgs(1),
			RunE: withClient(f, func(c *apiClient, p printer, _ *cobra.Command, args []string) error {
				var pr auth.Project
				if err := c.call("GET", "/projects/"+url.PathEscape(args[0]), nil, &pr); err != nil {
					return err
				}
				return p.print(pr, projectHeader, projectRows(pr))
			}),
		},
		create, update,
		del,
	)
	return cmd
}

// deleteRepository deletes one repository (its name below the project)
// and says what went.
func deleteRepository(c *apiClient, w io.Writer, project, repository string) error {
	var out api.RepositoryDeleted
	if err := c.call("DELETE", "/projects/"+url.PathEscape(project)+"/repositories/"+url.PathEscape(repository), nil, &out); err != nil {
		return err
	}
	noun := "manifests"
	if len(out.Deleted) == 1 {
		noun = "manifest"
	}
	fmt.Fprintf(w, "deleted repository %s (%d %s)\n", out.Repository, len(out.Deleted), noun)
	return nil
}

// splitRepository turns a repository's full name into its project and the
// name below it; a one-component name lives in library, as in the
// registry.
func splitRepository(full string) (project, repository string) {
	project, repository, ok := strings.Cut(full, "/")
	if !ok {
		return auth.DefaultProject, full
	}
	return project, repository
}

func newAdminRepoCmd(f *apiFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "repo", Short: "List and delete repositories"}
	cmd.AddCommand(
		&cobra.Command{
			Use: "list PROJECT", Short: "List a project's repositories", Args: cobra.ExactArgs(1),
			RunE: withClient(f, func(c *apiClient, p printer, _ *cobra.Command, args []string) error {
				var rs []api.Repository
				if err := c.call("GET", "/projects/"+url.PathEscape(args[0])+"/repositories", nil, &rs); err != nil {
					return err
				}
				return p.print(rs, "REPOSITORY", func(w io.Writer) {
					for _, r := range rs {
						fmt.Fprintln(w, r.FullName)
					}
				})
			}),
		},
		&cobra.Command{
			Use:   "delete PROJECT/REPOSITORY",
			Short: "Delete a repository: every artifact, tag, signature and SBOM in it",
			Long: `Delete a repository and everything it holds: its artifacts with their tags,
platform manifests, signatures, attestations and SBOMs. Who may delete in the
project may (project admins and maintainers). The blobs are freed by the next
garbage collection, once nothing else links them. A one-component name (alpine)
is library/alpine's repository, as in the registry.`,
			Args: cobra.ExactArgs(1),
			RunE: withClient(f, func(c *apiClient, _ printer, cmd *cobra.Command, args []string) error {
				project, repository := splitRepository(args[0])
				return deleteRepository(c, cmd.OutOrStdout(), project, repository)
			}),
		},
	)
	return cmd
}

func newAdminMemberCmd(f *apiFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "member", Short: "Manage project members and their roles"}
	var role string
	add := &cobra.Command{
		Use:   "add PROJECT USER --role ROLE",
		Short: "Add a member or change its role (projectAdmin, maintainer, developer, guest, limitedGuest)",
		Args:  cobra.ExactArgs(2),
		RunE: withClient(f, func(c *apiClient, p printer, _ *cobra.Command, args []string) error {
			var m auth.Member
			if err := c.call("PUT", "/projects/"+url.PathEscape(args[0])+"/members/"+url.PathEscape(args[1]),
				api.MemberRequest{Role: auth.Role(role)}, &m); err != nil {
				return err
			}
			return p.print(m, "PROJECT\tUSER\tROLE", func(w io.Writer) { fmt.Fprintf(w, "%s\t%s\t%s\n", m.Project, m.User, m.Role) })
		}),
	}
	add.Flags().StringVar(&role, "role", "", "projectAdmin, maintainer, developer, guest or limitedGuest")
	add.MarkFlagRequired("role")
	cmd.AddCommand(
		&cobra.Command{
			Use: "list PROJECT", Short: "List a project's members", Args: cobra.ExactArgs(1),
			RunE: withClient(f, func(c *apiClient, p printer, _ *cobra.Command, args []string) error {
				var ms []auth.Member
				if err := c.call("GET", "/projects/"+url.PathEscape(args[0])+"/members", nil, &ms); err != nil {
					return err
				}
				return p.print(ms, "USER\tROLE", func(w io.Writer) {
					for _, m := range ms {
						fmt.Fprintf(w, "%s\t%s\n", m.User, m.Role)
					}
				})
			}),
		},
		add,
		&cobra.Command{
			Use: "remove PROJECT USER", Short: "Remove a member", Args: cobra.ExactArgs(2),
			RunE: withClient(f, func(c *apiClient, _ printer, cmd *cobra.Command, args []string) error {
				if err := c.call("DELETE", "/projects/"+url.PathEscape(args[0])+"/members/"+url.PathEscape(args[1]), nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s from %s\n", args[1], args[0])
				return nil
			}),
		},
	)
	return cmd
}

const robotHeader = "NAME\tPERMISSIONS\tEXPIRES\tREVOKED\tCREATED BY"

func robotRows(rs ...auth.Robot) func(io.Writer) {
	return func(w io.Writer) {
		for _, r := range rs {
			var perms []string
			for _, p := range r.Permissions {
				actions := make([]string, len(p.Actions))
				for i, a := range p.Actions {
					actions[i] = string(a)
				}
				perms = append(perms, p.Project+"="+strings.Join(actions, ","))
			}
			expires := "never"
			if !r.ExpiresAt.IsZero() {
				expires = r.ExpiresAt.Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Name, strings.Join(perms, " "), expires, yesNo(r.Revoked), r.CreatedBy)
		}
	}
}

// parsePermissions reads PROJECT=ACTION,ACTION flags.
func parsePermissions(specs []string) ([]auth.RobotPermission, error) {
	var out []auth.RobotPermission
	for _, s := range specs {
		project, actions, ok := strings.Cut(s, "=")
		if !ok || project == "" || actions == "" {
			return nil, fmt.Errorf("--permission %q: want PROJECT=ACTION[,ACTION…], e.g. team-a=pull,push", s)
		}
		p := auth.RobotPermission{Project: project}
		for _, a := range strings.Split(actions, ",") {
			p.Actions = append(p.Actions, auth.Action(strings.TrimSpace(a)))
		}
		out = append(out, p)
	}
	return out, nil
}

func newAdminRobotCmd(f *apiFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "robot", Short: "Manage robot accounts (for CI)"}
	var perms, cidrs []string
	var expiresIn, description, project string
	create := &cobra.Command{
		Use:   "create NAME --permission PROJECT=ACTIONS …",
		Short: "Create a robot; its secret is printed once",
		Long: `Create a robot account named robot$NAME. Each --permission grants registry
actions (pull, push, delete, list, catalog) in one project; * names every
project (system administrators only). The secret is printed once and stored
only as a hash: keep it in your CI's secret store.`,
		Args: cobra.ExactArgs(1),
		RunE: withClient(f, func(c *apiClient, p printer, cmd *cobra.Command, args []string) error {
			permissions, err := parsePermissions(perms)
			if err != nil {
				return err
			}
			var created api.RobotCreated
			if err := c.call("POST", "/robots", api.RobotRequest{Name: args[0], Description: description, Permissions: permissions,
				ExpiresIn: expiresIn, AllowedCIDRs: cidrs}, &created); err != nil {
				return err
			}
			if p.json {
				return p.print(created, "", nil)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created robot %s\nsecret (shown only now): %s\n", created.Robot.Name, created.Secret)
			return nil
		}),
	}
	create.Flags().StringArrayVar(&perms, "permission", nil, "PROJECT=ACTION[,ACTION…] (repeatable)")
	create.Flags().StringVar(&expiresIn, "expires-in", "", "expire after this long (e.g. 720h); default never")
	create.Flags().StringVar(&description, "description", "", "what the robot is for")
	create.Flags().StringSliceVar(&cidrs, "allowed-cidr", nil, "only accept the robot's logins from these CIDRs (repeatable)")
	create.MarkFlagRequired("permission")
	list := &cobra.Command{
		Use: "list", Short: "List robots (of --project, or all for system administrators)", Args: cobra.NoArgs,
		RunE: withClient(f, func(c *apiClient, p printer, _ *cobra.Command, _ []string) error {
			path := "/robots"
			if project != "" {
				path += "?project=" + url.QueryEscape(project)
			}
			var rs []auth.Robot
			if err := c.call("GET", path, nil, &rs); err != nil {
				return err
			}
			return p.print(rs, robotHeader, robotRows(rs...))
		}),
	}
	list.Flags().StringVar(&project, "project", "", "only robots with a permission in this project")
	robotName := func(s string) string {
		if !strings.HasPrefix(s, auth.RobotPrefix) {
			s = auth.RobotPrefix + s
		}
		return url.PathEscape(s)
	}
	cmd.AddCommand(
		list, create,
		&cobra.Command{
			Use: "get NAME", Short: "Show a robot", Args: cobra.ExactArgs(1),
			RunE: withClient(f, func(c *apiClient, p printer, _ *cobra.Command, args []string) error {
				var r auth.Robot
				if err := c.call("GET", "/robots/"+robotName(args[0]), nil, &r); err != nil {
					return err
				}
				return p.print(r, robotHeader, robotRows(r))
			}),
		},
		&cobra.Command{
			Use: "revoke NAME", Short: "Revoke a robot: its secret and tokens stop working at once", Args: cobra.ExactArgs(1),
			RunE: withClient(f, func(c *apiClient, p printer, _ *cobra.Command, args []string) error {
				var r auth.Robot
				if err := c.call("POST", "/robots/"+robotName(args[0])+"/revoke", nil, &r); err != nil {
					return err
				}
				return p.print(r, robotHeader, robotRows(r))
			}),
		},
		&cobra.Command{
			Use: "delete NAME", Short: "Delete a robot", Args: cobra.ExactArgs(1),
			RunE: withClient(f, func(c *apiClient, _ printer, cmd *cobra.Command, args []string) error {
				if err := c.call("DELETE", "/robots/"+robotName(args[0]), nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted robot %s\n", args[0])
				return nil
			}),
		},
	)
	return cmd
}

func newAdminResetPasswordCmd(f *apiFlags) *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "reset-password USER --data DIR",
		Short: "Set a user's password in a stopped server's data directory",
		Long: `Set the password of USER in the data directory of a stopped server, for when
no administrator can log in (the first administrator's generated password was
lost, say). The new password is ` + server.AdminPasswordEnv + ` if set, else read from
standard input with --password-stdin, else generated and printed once. The
user's refresh tokens end and its lockout is cleared; for admin, the kept first
password (<data>/initial-admin-password) goes too.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			password, generated := os.Getenv(server.AdminPasswordEnv), false
			switch {
			case password != "":
			case f.passwordStdin:
				raw, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4096))
				if err != nil {
					return fmt.Errorf("read the password from stdin: %w", err)
				}
				password = strings.TrimRight(string(raw), "\r\n")
			default:
				password, generated = generatePassword(), true
			}
			if err := auth.ValidatePassword(password); err != nil {
				return err
			}
			o, err := openOfflineAuth(cmd, data)
			if err != nil {
				return err
			}
			err = auth.ResetPassword(cmd.Context(), o.Auth, args[0], password, server.InitialPasswordPath(data))
			if err == nil {
				err = o.Record("user.update", "user "+args[0]+": password reset")
			}
			if err = errors.Join(err, o.Close()); err != nil {
				return err
			}
			if generated {
				fmt.Fprintf(cmd.OutOrStdout(), "reset the password of %s; the new password (shown only now): %s\n", args[0], password)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "reset the password of %s\n", args[0])
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "the stopped server's data directory")
	cmd.MarkFlagRequired("data")
	return cmd
}
