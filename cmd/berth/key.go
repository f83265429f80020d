package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/keyref"
	"berth.dev/berth/internal/sign/keys"
)

func newKeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage signing keys",
	}
	cmd.AddCommand(newKeyGenerateCmd())
	addKeyCustodyCmds(cmd)
	return cmd
}

func newKeyGenerateCmd() *cobra.Command {
	var prefix string
	var force bool
	var tokenKey, keyType string
	var master bool
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
			if tokenKey != "" || master {
				return generateInToken(cmd, tokenKey, keyType, master, prefix, force)
			}
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
			priv, err := keys.GenerateKind(keyType)
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
	cmd.Flags().StringVar(&tokenKey, "key", "", "create the key pair inside a PKCS #11 token instead (pkcs11:token=…;object=…?module-path=…&pin-value=…); only PREFIX.pub is written")
	cmd.Flags().StringVar(&keyType, "type", "ecdsa-p256", "key type: ecdsa-p256, ed25519 or rsa-3072 (in a token: ecdsa-p256, ecdsa-p384, rsa-3072)")
	cmd.Flags().BoolVar(&master, "master", false, "with --key: create an AES-256 master key in the token for berth serve's keys.master_key")
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

// loadSigningKey opens a key reference: a private key file (unencrypted
// ones need allowUnencrypted, --insecure-key), a pkcs11: URI or a KMS
// reference. Close the key when done (it may hold a token's session).
func loadSigningKey(path string, allowUnencrypted bool) (*sign.Key, error) {
	key, err := keyref.Signing(context.Background(), path, keyref.Options{
		Password:         func() ([]byte, error) { return readPassword(false) },
		AllowUnencrypted: allowUnencrypted,
	})
	if errors.Is(err, keys.ErrUnencryptedKey) {
		return nil, fmt.Errorf("%w; pass --insecure-key to use it anyway", err)
	}
	return key, err
}
