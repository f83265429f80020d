package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/keys"
)

// trustFlags choose who must vouch for an image.
type trustFlags struct {
	keys      []string
	trustFile string
	require   int
}

func (f *trustFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&f.keys, "key", nil, "trusted public key file (repeatable)")
	cmd.Flags().StringVar(&f.trustFile, "trust", "", "trust file (YAML) listing public keys and their validity windows")
	cmd.Flags().IntVar(&f.require, "require", 0, "number of distinct trusted keys that must vouch (default: every --key; with --trust, the file's require, itself defaulting to 1)")
}

// trust builds the trust set. Several --key flags mean "all of these
// signers"; a trust file means "any valid key of this set", which is what
// a key rotation needs. --require overrides either.
func (f *trustFlags) trust(cmd *cobra.Command) (sign.Trust, error) {
	var t sign.Trust
	if f.trustFile != "" {
		var err error
		if t, err = sign.LoadTrustFile(f.trustFile); err != nil {
			return sign.Trust{}, err
		}
	}
	for _, p := range f.keys {
		data, err := os.ReadFile(p)
		if err != nil {
			return sign.Trust{}, fmt.Errorf("read public key: %w", err)
		}
		pub, err := keys.ParsePublic(data)
		if err != nil {
			return sign.Trust{}, fmt.Errorf("%s: %w", p, err)
		}
		k, err := sign.NewTrustedKey(p, pub, time.Time{}, time.Time{})
		if err != nil {
			return sign.Trust{}, err
		}
		t.Keys = append(t.Keys, k)
	}
	switch {
	case len(t.Keys) == 0:
		return sign.Trust{}, errors.New("give the trusted public keys with --key or --trust")
	case cmd.Flags().Changed("require"):
		t.Require = f.require
	case f.trustFile == "":
		t.Require = len(t.Keys)
	}
	return t, nil
}

func newVerifyCmd() *cobra.Command {
	var (
		tf          trustFlags
		annotations []string
		reg         registryFlags
		cf          cosignFlags
	)
	cmd := &cobra.Command{
		Use:   "verify IMAGE --key KEY.pub",
		Short: "Verify an image's signatures (cosign-compatible)",
		Long: `Verify that trusted keys signed exactly the image's manifest digest. Every form
cosign writes is read: the sha256-<hex>.sig tag (cosign v2) and sigstore
bundles among the image's OCI 1.1 referrers (cosign v3, through the referrers
API or the referrers tag schema).

The verified payloads are printed as a JSON array, as cosign prints them. The
command exits non-zero, saying why each signature was rejected, when fewer
distinct keys vouch than --require asks.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cf.check(cmd); err != nil {
				return err
			}
			ann, err := parseAnnotations(annotations)
			if err != nil {
				return err
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
			pr := newProgress(cmd)
			pr.spin("resolving " + ref.String())
			t, err := sign.Resolve(ctx, st, ref)
			pr.done()
			if err != nil {
				return err
			}
			reportResolved(cmd, ref, t)
			pr.spin("verifying " + t.String())
			res, err := sign.Verify(ctx, st, t, trust, sign.VerifyOptions{Annotations: ann})
			pr.done()
			if err != nil {
				return err
			}
			payloads := make([]json.RawMessage, 0, len(res.Verified))
			for _, v := range res.Verified {
				fmt.Fprintf(cmd.ErrOrStderr(), "verified %s with key %s\n", v.Source, v.Key)
				payloads = append(payloads, v.Payload)
			}
			out, err := json.Marshal(payloads)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(out))
			return nil
		},
	}
	tf.add(cmd)
	cmd.Flags().StringArrayVarP(&annotations, "annotations", "a", nil, "require key=value in the signed payload (repeatable)")
	reg.add(cmd)
	cf.addVerifying(cmd)
	return cmd
}
