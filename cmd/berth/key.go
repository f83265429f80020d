package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/keys"
)

func newKeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage signing keys",
	}
	cmd.AddCommand(newKeyGenerateCmd())
	return cmd
}

func newKeyGenerateCmd() *cobra.Command {
	var prefix string
	var force bool
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Generate an ECDSA P-256 key pair in cosign's format",
		Long: `Generate an ECDSA P-256 key pair: PREFIX.key holds the private key encrypted
with a password (cosign's "ENCRYPTED SIGSTORE PRIVATE KEY" format, which cosign
reads too), PREFIX.pub the public key.

The password comes from BERTH_KEY_PASSWORD (else COSIGN_PASSWORD), or is
asked for twice on the terminal. BERTH_PASSWORD, the login password, is never
used for keys.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			privPath, pubPath := prefix+".key", prefix+".pub"
			if !force {
				for _, p := range []string{privPath, pubPath} {
					if _, err := os.Stat(p); err == nil {
						return fmt.Errorf("%s already exists; remove it or pass --force", p)
					}
				}
			}
			pw, err := readPassword(true)
			if err != nil {
				return err
			}
			priv, err := keys.Generate()
			if err != nil {
				return err
			}
			privPEM, err := keys.EncodeEncryptedPrivate(priv, pw)
			if err != nil {
				return err
			}
			pubPEM, err := keys.EncodePublic(priv.Public())
			if err != nil {
				return err
			}
			// ForcePerm: --force over an existing world-readable file must
			// not leave the private key readable by others.
			if err := writeOutput(privPath, outputFile{Perm: 0o600, ForcePerm: true}, writeBytes(privPEM)); err != nil {
				return fmt.Errorf("private key: %w", err)
			}
			if err := writeOutput(pubPath, outputFile{Perm: 0o644}, writeBytes(pubPEM)); err != nil {
				return fmt.Errorf("public key: %w", err)
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "Private key written to", privPath)
			fmt.Fprintln(cmd.ErrOrStderr(), "Public key written to", pubPath)
			return nil
		},
	}
	cmd.Flags().StringVar(&prefix, "output-key-prefix", "berth", "write PREFIX.key and PREFIX.pub")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite existing key files")
	return cmd
}

// Key passwords come from these variables, in this order (set but empty
// means an empty password, as in cosign). BERTH_PASSWORD is the login
// password and deliberately not among them: one variable meaning two
// secrets made key generate encrypt keys with the login password.
var keyPasswordEnv = []string{"BERTH_KEY_PASSWORD", "COSIGN_PASSWORD"}

// readPassword returns the key password from keyPasswordEnv, or asks on the
// terminal; confirm asks twice.
func readPassword(confirm bool) ([]byte, error) {
	for _, env := range keyPasswordEnv {
		if v, ok := os.LookupEnv(env); ok {
			return []byte(v), nil
		}
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		msg := "no key password: set BERTH_KEY_PASSWORD (or COSIGN_PASSWORD), or run on a terminal"
		if _, ok := os.LookupEnv("BERTH_PASSWORD"); ok {
			msg += " (BERTH_PASSWORD is the login password; keys do not use it)"
		}
		return nil, errors.New(msg)
	}
	fmt.Fprint(os.Stderr, "Enter password for private key: ")
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return nil, fmt.Errorf("read password: %w", err)
	}
	if !confirm {
		return pw, nil
	}
	fmt.Fprint(os.Stderr, "Enter password for private key again: ")
	again, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return nil, fmt.Errorf("read password: %w", err)
	}
	if !bytes.Equal(pw, again) {
		return nil, errors.New("passwords do not match")
	}
	return pw, nil
}

// loadSigningKey reads a private key file; unencrypted keys need
// allowUnencrypted (--insecure-key).
func loadSigningKey(path string, allowUnencrypted bool) (*sign.Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	priv, err := keys.ParsePrivate(data, func() ([]byte, error) { return readPassword(false) }, allowUnencrypted)
	if err != nil {
		if errors.Is(err, keys.ErrUnencryptedKey) {
			return nil, fmt.Errorf("%s: %w; pass --insecure-key to use it anyway", path, err)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sign.NewKey(priv)
}
