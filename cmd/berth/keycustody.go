package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/sign/hsm"
	"berth.dev/berth/internal/sign/keyref"
	"berth.dev/berth/internal/sign/keys"
)

// addKeyCustodyCmds adds the key commands beyond generate: the public
// half of any key reference, and the server's project keys.
func addKeyCustodyCmds(cmd *cobra.Command) {
	cmd.AddCommand(newKeyPublicCmd())
}

// generateInToken is `berth key generate --key pkcs11:…`: the key pair is
// made inside the token and only its public half comes out (written to
// PREFIX.pub). With --master it makes an AES-256 master key instead: in
// the token, or, without --key, in PREFIX.master (base64, 0600) for
// keys.master_key: file:….
func generateInToken(cmd *cobra.Command, ref, kind string, master bool, prefix string, force bool) error {
	if ref == "" {
		path := prefix + ".master"
		if _, err := os.Stat(path); err == nil && !force {
			return fmt.Errorf("%s already exists; remove it or pass --force", path)
		}
		raw := make([]byte, 32)
		rand.Read(raw)
		if err := writeOutput(path, outputFile{Perm: 0o600, ForcePerm: true}, writeBytes([]byte(base64.StdEncoding.EncodeToString(raw)+"\n"))); err != nil {
			return fmt.Errorf("master key: %w", err)
		}
		fmt.Fprintln(cmd.ErrOrStderr(), "Master key written to", path, "(use it with berth serve --master-key file:"+path+")")
		return nil
	}
	if !hsm.IsURI(ref) {
		return errors.New("--key takes a pkcs11: URI: berth creates keys inside tokens only (KMS keys are created with the provider's own tools)")
	}
	u, err := hsm.ParseURI(ref)
	if err != nil {
		return err
	}
	tok, err := hsm.Open(u)
	if err != nil {
		return err
	}
	defer tok.Close()
	if master {
		if err := tok.GenerateSecret(u); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "AES-256 master key created in %s\n", u)
		return nil
	}
	s, err := tok.GenerateKeyPair(u, kind)
	if err != nil {
		return err
	}
	pubPEM, err := keys.EncodePublic(s.Public())
	if err != nil {
		return err
	}
	pubPath := prefix + ".pub"
	if _, err := os.Stat(pubPath); err == nil && !force {
		// The key exists in the token already; print the public half
		// rather than lose it.
		fmt.Fprint(cmd.OutOrStdout(), string(pubPEM))
		return fmt.Errorf("key pair created in %s, but %s already exists: its public key is printed above (pass --force to overwrite)", u, pubPath)
	}
	if err := writeOutput(pubPath, outputFile{Perm: 0o644}, writeBytes(pubPEM)); err != nil {
		return fmt.Errorf("public key: %w", err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Key pair created in %s\nPublic key written to %s\n", u, pubPath)
	return nil
}

func newKeyPublicCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "public KEYREF",
		Short: "Print the PEM public key of a key file, a pkcs11: URI or a KMS key",
		Long: `Print the public key of a key reference as PEM, for cosign verify --key,
berth verify --key and trust files:

  a file            a public key, or a private key (its password is asked for if it is encrypted)
  pkcs11:…          a key pair in a PKCS #11 token (RFC 7512 URI; the private half stays there)
  hashivault://…, awskms://…, gcpkms://…, azurekms://…
                    a KMS key, when this berth has the provider`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := keyref.Public(cmd.Context(), args[0], keyref.Options{Password: func() ([]byte, error) { return readPassword(false) }})
			if err != nil {
				return err
			}
			pemBytes, err := keys.EncodePublic(pub)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(pemBytes)
			return err
		},
	}
}
