package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/keys"
)

// cosignFlags are cosign flags that scripts written for cosign pass and
// that mean nothing for berth, which never talks to a transparency log
// and never asks for confirmation. They are accepted, with a one-line
// note, so such a script runs unchanged; a value berth cannot honour
// (--tlog-upload=true) is refused rather than ignored.
type cosignFlags struct {
	tlogUpload, ignoreTlog, yes bool
}

// addSigning adds the flags of cosign's signing commands.
func (f *cosignFlags) addSigning(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.tlogUpload, "tlog-upload", false, "cosign's flag; berth never uploads to a transparency log (=false is accepted with a note)")
	cmd.Flags().BoolVarP(&f.yes, "yes", "y", false, "cosign's flag; berth asks for no confirmation (accepted with a note)")
}

// addVerifying adds the flags of cosign's verifying commands.
func (f *cosignFlags) addVerifying(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.ignoreTlog, "insecure-ignore-tlog", false, "cosign's flag; berth never reads a transparency log (accepted with a note)")
}

// check prints a note for each such flag given, and refuses one that asks
// for what berth cannot do.
func (f *cosignFlags) check(cmd *cobra.Command) error {
	fl := cmd.Flags()
	note := func(format string, args ...any) {
		fmt.Fprintf(cmd.ErrOrStderr(), "note: "+format+"\n", args...)
	}
	if fl.Lookup("tlog-upload") != nil && fl.Changed("tlog-upload") {
		if f.tlogUpload {
			return errors.New("--tlog-upload=true: berth does not upload to a transparency log (Rekor); signatures are verified with keys only")
		}
		note("--tlog-upload=false changes nothing: berth never uploads to a transparency log")
	}
	if fl.Lookup("insecure-ignore-tlog") != nil && fl.Changed("insecure-ignore-tlog") {
		if !f.ignoreTlog {
			return errors.New("--insecure-ignore-tlog=false: berth does not read a transparency log; signatures are verified with keys only")
		}
		note("--insecure-ignore-tlog changes nothing: berth never reads a transparency log")
	}
	if fl.Lookup("yes") != nil && fl.Changed("yes") {
		note("--yes changes nothing: berth asks for no confirmation")
	}
	return nil
}

// warnReferrers says what --referrers costs with cosign v2 verifiers.
func warnReferrers(cmd *cobra.Command) {
	fmt.Fprintln(cmd.ErrOrStderr(), "warning: --referrers: once an image has a sigstore bundle among its referrers, cosign v2 refuses to verify it at all "+
		"(its .sig and .att too: \"trusted root is required\"); while cosign v2 verifiers remain, keep to the default tag scheme (docs/signing.md)")
}

// signOutputs are cosign sign's files for what was signed.
type signOutputs struct {
	signature, payload, certificate string
}

func (o *signOutputs) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.signature, "output-signature", "", "also write the signature, base64, to this file (as cosign does; tag scheme only)")
	cmd.Flags().StringVar(&o.payload, "output-payload", "", "also write the signed payload to this file (tag scheme only)")
	cmd.Flags().StringVar(&o.certificate, "output-certificate", "", "cosign's flag; key signatures have no certificate, so nothing is written (accepted with a note)")
}

// check refuses outputs berth cannot write before anything is signed.
func (o *signOutputs) check(cmd *cobra.Command, referrers bool) error {
	if referrers && (o.signature != "" || o.payload != "") {
		return errors.New("--output-signature and --output-payload write the tag scheme's signature; not with --referrers")
	}
	if o.certificate != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "note: --output-certificate: a key signature has no certificate; %s is not written\n", o.certificate)
	}
	return nil
}

// write writes the outputs asked for.
func (o *signOutputs) write(w sign.Written) error {
	if o.signature != "" {
		if err := writeOutput(o.signature, outputFile{Perm: 0o644}, writeBytes([]byte(base64.StdEncoding.EncodeToString(w.Signature)))); err != nil {
			return fmt.Errorf("--output-signature: %w", err)
		}
	}
	if o.payload != "" {
		if err := writeOutput(o.payload, outputFile{Perm: 0o644}, writeBytes(w.Payload)); err != nil {
			return fmt.Errorf("--output-payload: %w", err)
		}
	}
	return nil
}

func newSignBlobCmd() *cobra.Command {
	var keyPath, output string
	var insecureKey bool
	var cf cosignFlags
	cmd := &cobra.Command{
		Use:   "sign-blob FILE --key KEY",
		Short: "Sign a file (cosign sign-blob with a key)",
		Long: `Sign the bytes of FILE with a private key, as 'cosign sign-blob --key' does:
the signature over their SHA-256, printed in base64 (or written to
--output-signature). 'berth verify-blob' and 'cosign verify-blob --key KEY.pub
--signature FILE.sig --insecure-ignore-tlog' check it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyPath == "" {
				return errors.New("--key is required")
			}
			if err := cf.check(cmd); err != nil {
				return err
			}
			key, err := loadSigningKey(keyPath, insecureKey)
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			sig, err := sign.SignBlob(cmd.Context(), key, f)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			b64 := base64.StdEncoding.EncodeToString(sig)
			if output == "" {
				fmt.Fprintln(cmd.OutOrStdout(), b64)
				return nil
			}
			if err := writeOutput(output, outputFile{Perm: 0o644}, writeBytes([]byte(b64))); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "signature of %s written to %s\n", args[0], output)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "private key file (cosign or berth format)")
	cmd.Flags().StringVar(&output, "output-signature", "", "write the signature (base64) to this file instead of standard output")
	cmd.Flags().BoolVar(&insecureKey, "insecure-key", false, "accept an unencrypted private key")
	cf.addSigning(cmd)
	return cmd
}

func newVerifyBlobCmd() *cobra.Command {
	var keyPath, sigPath string
	var cf cosignFlags
	cmd := &cobra.Command{
		Use:   "verify-blob FILE --key KEY.pub --signature FILE.sig",
		Short: "Verify a file's signature (cosign verify-blob with a key)",
		Long: `Verify a signature of FILE made by 'berth sign-blob' or 'cosign sign-blob
--key': --signature names a file holding it in base64 (or raw). Exits 1 when
it does not verify.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyPath == "" || sigPath == "" {
				return errors.New("--key and --signature are required")
			}
			if err := cf.check(cmd); err != nil {
				return err
			}
			pemData, err := os.ReadFile(keyPath)
			if err != nil {
				return fmt.Errorf("read public key: %w", err)
			}
			pub, err := keys.ParsePublic(pemData)
			if err != nil {
				return fmt.Errorf("%s: %w", keyPath, err)
			}
			raw, err := os.ReadFile(sigPath)
			if err != nil {
				return fmt.Errorf("read signature: %w", err)
			}
			sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
			if err != nil {
				sig = raw // cosign accepts a raw signature too
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			if err := sign.VerifyBlob(pub, sig, f); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Verified OK: %s signed with %s\n", args[0], keyPath)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "public key file")
	cmd.Flags().StringVar(&sigPath, "signature", "", "signature file (base64 or raw)")
	cf.addVerifying(cmd)
	return cmd
}
