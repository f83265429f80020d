package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	dockerconfig "github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// loginPasswordEnv is the login password's variable: berth login, berth
// admin and berth audit read it. Nothing else does (keys have their own,
// see keyPasswordEnv).
const loginPasswordEnv = "BERTH_PASSWORD"

// Credentials are kept where docker, crane, cosign, oras and helm keep
// them: the docker config file ($DOCKER_CONFIG/config.json, else
// ~/.docker/config.json), or the credential helper it names. One login
// then serves every berth command (through go-containerregistry's default
// keychain, which reads the same file) and every one of those clients.

// dockerConfigDir is where the docker config file lives. It is worked out
// on every call rather than through docker's own cached lookup, so that
// the environment a command runs in is the one that counts.
func dockerConfigDir() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".docker"
	}
	return filepath.Join(home, ".docker")
}

func loadDockerConfig() (*configfile.ConfigFile, error) {
	cf, err := dockerconfig.Load(dockerConfigDir())
	if err != nil {
		return nil, fmt.Errorf("read the docker config: %w", err)
	}
	return cf, nil
}

// storedLogin returns the username and password stored for host ("" when
// none, or when what is stored is a token berth cannot send as a password).
func storedLogin(host string) (user, password string, err error) {
	cf, err := loadDockerConfig()
	if err != nil {
		return "", "", err
	}
	ac, err := cf.GetAuthConfig(host)
	if err != nil {
		return "", "", fmt.Errorf("read the stored login for %s: %w", host, err)
	}
	return ac.Username, ac.Password, nil
}

// registryHost turns what a user calls a server (127.0.0.1:5000,
// http://127.0.0.1:5000/, https://registry.example) into the host:port
// credentials are stored under, and says whether plain HTTP was named.
func registryHost(s string) (host string, plainHTTP bool, err error) {
	host = s
	if rest, ok := strings.CutPrefix(host, "http://"); ok {
		host, plainHTTP = rest, true
	} else {
		host = strings.TrimPrefix(host, "https://")
	}
	host = strings.TrimRight(host, "/")
	if host == "" || strings.ContainsAny(host, "/ @") {
		return "", false, fmt.Errorf("%q: want a registry host such as 127.0.0.1:5000 or registry.example.com", s)
	}
	return host, plainHTTP, nil
}

// readSecret reads a password from standard input (--password-stdin):
// the first line, at most 4 KiB.
func readSecret(in io.Reader) (string, error) {
	raw, err := io.ReadAll(io.LimitReader(in, 4096))
	if err != nil {
		return "", fmt.Errorf("read the password from stdin: %w", err)
	}
	pw, _, _ := strings.Cut(string(raw), "\n")
	return strings.TrimRight(pw, "\r"), nil
}

// promptLine asks for a line on the terminal; ok is false without one.
func promptLine(prompt string, secret bool) (string, bool, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", false, nil
	}
	fmt.Fprint(os.Stderr, prompt)
	if secret {
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		return string(b), true, err
	}
	var line string
	_, err := fmt.Fscanln(os.Stdin, &line)
	return strings.TrimSpace(line), true, err
}

// loginError says plainly why a registry refused credentials.
func loginError(host, user string, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("wrong username or password for %s at %s", user, host)
		case http.StatusTooManyRequests:
			return fmt.Errorf("%s is locked out at %s after too many failed logins; try again later (an administrator can run 'berth admin unlock')", user, host)
		}
	}
	return fmt.Errorf("log in to %s: %w", host, err)
}

// checkLogin proves user and password against the registry at host, with
// the registry's own handshake (a token from its realm, or Basic), and a
// request to /v2/ that must succeed with them.
func checkLogin(ctx context.Context, host string, plainHTTP, insecure bool, user, password string) error {
	var opts []name.Option
	if plainHTTP || insecure {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, opts...)
	if err != nil {
		return fmt.Errorf("%s: %w", host, err)
	}
	var inner http.RoundTripper = http.DefaultTransport
	if insecure {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for by --insecure
		inner = tr
	}
	rt, err := transport.NewWithContext(ctx, reg, &authn.Basic{Username: user, Password: password}, inner,
		[]string{reg.Scope(transport.PullScope)})
	if err != nil {
		return loginError(host, user, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reg.Scheme()+"://"+reg.RegistryStr()+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return loginError(host, user, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return loginError(host, user, &transport.Error{StatusCode: resp.StatusCode})
	}
	return nil
}

func newLoginCmd() *cobra.Command {
	var user, password string
	var passwordStdin, insecure bool
	cmd := &cobra.Command{
		Use:   "login HOST [-u USER] [--password-stdin]",
		Short: "Log in to a registry (a berth server or any other) and keep the credentials",
		Long: `Log in to the registry at HOST (host:port, or a URL) and keep the credentials
where docker, crane, cosign and oras keep theirs: the docker config file
($DOCKER_CONFIG/config.json, else ~/.docker/config.json), or the credential
helper it names. Every berth command then uses them for HOST: scan, sbom,
sign, verify, attest, db push, admin and audit.

The credentials are checked first: a wrong password stores nothing. The
password comes from --password-stdin, -p, BERTH_PASSWORD, or is asked for on
the terminal.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host, plainHTTP, err := registryHost(args[0])
			if err != nil {
				return err
			}
			if user == "" {
				u, ok, err := promptLine("Username: ", false)
				if err != nil {
					return fmt.Errorf("read the username: %w", err)
				}
				if !ok || u == "" {
					return errors.New("give the username with -u USER")
				}
				user = u
			}
			switch {
			case passwordStdin:
				if password, err = readSecret(cmd.InOrStdin()); err != nil {
					return err
				}
			case password != "":
			case os.Getenv(loginPasswordEnv) != "":
				password = os.Getenv(loginPasswordEnv)
			default:
				pw, ok, err := promptLine("Password: ", true)
				if err != nil {
					return fmt.Errorf("read the password: %w", err)
				}
				if !ok {
					return errors.New("no password: give it with --password-stdin, set BERTH_PASSWORD, or run on a terminal")
				}
				password = pw
			}
			if password == "" {
				return errors.New("the password is empty")
			}
			if err := checkLogin(cmd.Context(), host, plainHTTP, insecure, user, password); err != nil {
				return err
			}
			cf, err := loadDockerConfig()
			if err != nil {
				return err
			}
			if err := cf.GetCredentialsStore(host).Store(types.AuthConfig{ServerAddress: host, Username: user, Password: password}); err != nil {
				return fmt.Errorf("store the credentials for %s: %w", host, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "logged in to %s as %s\n", host, user)
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", envOr("BERTH_USERNAME", ""), "user or robot$NAME (env BERTH_USERNAME)")
	cmd.Flags().StringVarP(&password, "password", "p", "", "password or robot secret (prefer --password-stdin or BERTH_PASSWORD: the process list shows flags)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow plain HTTP and unverified TLS (loopback registries may always use plain HTTP)")
	return cmd
}

func newLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout HOST",
		Short: "Forget the credentials kept for a registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host, _, err := registryHost(args[0])
			if err != nil {
				return err
			}
			cf, err := loadDockerConfig()
			if err != nil {
				return err
			}
			store := cf.GetCredentialsStore(host)
			if ac, err := store.Get(host); err == nil && ac.Username == "" && ac.Password == "" && ac.IdentityToken == "" && ac.RegistryToken == "" {
				fmt.Fprintf(cmd.OutOrStdout(), "not logged in to %s; nothing to forget\n", host)
				return nil
			}
			if err := store.Erase(host); err != nil {
				return fmt.Errorf("forget the credentials for %s: %w", host, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "logged out of %s\n", host)
			return nil
		},
	}
}

// explainAuth puts a plain sentence before a registry's refusal of
// credentials (a 401 from the registry or its token endpoint), which
// go-containerregistry reports as "UNAUTHORIZED: authentication required":
// whether berth had credentials for that host at all. Other errors pass
// through. explicit says the command was given credentials in its flags.
func explainAuth(err error, explicit bool) error {
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != http.StatusUnauthorized || te.Request == nil {
		return err
	}
	host := te.Request.URL.Host
	if explicit {
		return fmt.Errorf("wrong username or password for %s (%w)", host, err)
	}
	user, password, serr := storedLogin(host)
	if serr != nil || password == "" {
		return fmt.Errorf("not logged in to %s: run 'berth login %s' (%w)", host, host, err)
	}
	return fmt.Errorf("wrong username or password for %s at %s (stored by 'berth login': log in again) (%w)", user, host, err)
}

// explicitCredentials says whether the command that ran was given registry
// credentials in its flags.
func explicitCredentials(cmd *cobra.Command) bool {
	if cmd == nil {
		return false
	}
	for _, n := range []string{"username", "password", "password-stdin", "registry-token"} {
		if f := cmd.Flags().Lookup(n); f != nil && f.Changed {
			return true
		}
	}
	return false
}
