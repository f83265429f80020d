package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/attestation"
)

func newAttestCmd() *cobra.Command {
	var (
		keyPath       string
		predicatePath string
		kind          string
		referrers     bool
		insecureKey   bool
		reg           registryFlags
	)
	cmd := &cobra.Command{
		Use:   "attest IMAGE --predicate FILE --type TYPE --key KEY",
		Short: "Attach a signed in-toto attestation to an image (cosign-compatible)",
		Long: `Wrap a predicate (an SBOM, provenance, a vulnerability report, VEX, …) in an
in-toto statement about the image's manifest digest, sign it in a DSSE
envelope and attach it: by default as cosign v2 does (a layer of the
sha256-<hex>.att manifest), with --referrers as cosign v3 does (a sigstore
bundle in an OCI 1.1 referrer).

--type takes cosign's names (` + strings.Join(attestation.Kinds(), ", ") + `)
or a predicate type URI.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyPath == "" || predicatePath == "" {
				return fmt.Errorf("--key and --predicate are required")
			}
			if _, err := attestation.PredicateTypeURI(kind); err != nil {
				return err
			}
			predicate, err := os.ReadFile(predicatePath)
			if err != nil {
				return fmt.Errorf("read predicate: %w", err)
			}
			ref, st, err := reg.open(args[0])
			if err != nil {
				return err
			}
			key, err := loadSigningKey(keyPath, insecureKey)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			t, err := sign.Resolve(ctx, st, ref)
			if err != nil {
				return err
			}
			reportResolved(cmd, ref, t)
			statement, err := sign.NewStatement(t, kind, predicate, time.Now())
			if err != nil {
				return fmt.Errorf("%s: %w", predicatePath, err)
			}
			w, err := sign.Attest(ctx, st, t, statement, key, sign.AttestOptions{Referrers: referrers})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "attested %s (%s)\n", t, statement.PredicateType)
			fmt.Fprintf(cmd.ErrOrStderr(), "attestation stored in %s\n", w.Ref)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "private key file (cosign or berth format)")
	cmd.Flags().StringVar(&predicatePath, "predicate", "", "predicate file")
	cmd.Flags().StringVar(&kind, "type", "custom", "predicate type: a cosign name or a URI")
	cmd.Flags().BoolVar(&referrers, "referrers", false, "store a sigstore bundle as an OCI 1.1 referrer (cosign v3) instead of the .att tag (cosign v2)")
	cmd.Flags().BoolVar(&insecureKey, "insecure-key", false, "accept an unencrypted private key")
	reg.add(cmd)
	return cmd
}

func newVerifyAttestationCmd() *cobra.Command {
	var (
		tf   trustFlags
		kind string
		reg  registryFlags
	)
	cmd := &cobra.Command{
		Use:   "verify-attestation IMAGE --key KEY.pub [--type TYPE]",
		Short: "Verify an image's attestations and print their statements",
		Long: `Verify in-toto attestations about the image's manifest digest, in every form
cosign writes (the sha256-<hex>.att tag and sigstore bundles among the
referrers), keeping those of --type when given. Each verified statement is
printed as one line of JSON.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var predicateType string
			if kind != "" {
				var err error
				if predicateType, err = attestation.PredicateTypeURI(kind); err != nil {
					return err
				}
			}
			trust, err := tf.trust(cmd)
			if err != nil {
				return err
			}
			ref, st, err := reg.open(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			t, err := sign.Resolve(ctx, st, ref)
			if err != nil {
				return err
			}
			reportResolved(cmd, ref, t)
			res, err := sign.VerifyAttestations(ctx, st, t, trust, sign.VerifyOptions{PredicateType: predicateType})
			if err != nil {
				return err
			}
			for _, v := range res.Verified {
				fmt.Fprintf(cmd.ErrOrStderr(), "verified %s attestation %s with key %s\n", v.PredicateType, v.Source, v.Key)
				var line bytes.Buffer
				if err := json.Compact(&line, v.Payload); err != nil {
					return fmt.Errorf("%s: %w", v.Source, err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), line.String())
			}
			return nil
		},
	}
	tf.add(cmd)
	cmd.Flags().StringVar(&kind, "type", "", "keep only this predicate type (a cosign name or a URI)")
	reg.add(cmd)
	return cmd
}
