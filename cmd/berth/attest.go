package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/attestation"
	"berth.dev/berth/internal/sign/store"
)

func newAttestCmd() *cobra.Command {
	var (
		keyPath       string
		predicatePath string
		kind          string
		referrers     bool
		insecureKey   bool
		reg           registryFlags
		cf            cosignFlags
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
			if err := cf.check(cmd); err != nil {
				return err
			}
			if referrers {
				warnReferrers(cmd)
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
			defer key.Close()
			ctx := cmd.Context()
			pr := newProgress(cmd)
			pr.spin("resolving " + ref.String())
			t, err := sign.Resolve(ctx, st, ref)
			pr.done()
			if err != nil {
				return err
			}
			reportResolved(cmd, ref, t)
			statement, err := sign.NewStatement(t, kind, predicate, time.Now())
			if err != nil {
				return fmt.Errorf("%s: %w", predicatePath, err)
			}
			pr.spin("attesting " + t.String())
			w, err := sign.Attest(ctx, st, t, statement, key, sign.AttestOptions{Referrers: referrers})
			pr.done()
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
	cf.addSigning(cmd)
	return cmd
}

func newVerifyAttestationCmd() *cobra.Command {
	var (
		tf   trustFlags
		kind string
		reg  registryFlags
		cf   cosignFlags
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
			if err := cf.check(cmd); err != nil {
				return err
			}
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
			pr := newProgress(cmd)
			pr.spin("resolving " + ref.String())
			t, err := sign.Resolve(ctx, st, ref)
			pr.done()
			if err != nil {
				return err
			}
			reportResolved(cmd, ref, t)
			pr.spin("verifying the attestations of " + t.String())
			res, err := sign.VerifyAttestations(ctx, st, t, trust, sign.VerifyOptions{PredicateType: predicateType})
			pr.done()
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
	cf.addVerifying(cmd)
	return cmd
}

// attestFlags are the --attest group of berth sbom and berth scan: sign the
// document just produced and attach it to the image it describes, in one
// step.
type attestFlags struct {
	on          bool
	keyPath     string
	referrers   bool
	insecureKey bool
}

func (f *attestFlags) add(cmd *cobra.Command, what string) {
	fl := cmd.Flags()
	fl.BoolVar(&f.on, "attest", false, "attach "+what+" to the image as a signed in-toto attestation (registry images only; needs --key)")
	fl.StringVar(&f.keyPath, "key", "", "with --attest: private key file that signs the attestation (cosign or berth format)")
	fl.BoolVar(&f.referrers, "referrers", false, "with --attest: store a sigstore bundle as an OCI 1.1 referrer (cosign v3) instead of the .att tag (cosign v2)")
	fl.BoolVar(&f.insecureKey, "insecure-key", false, "with --attest: accept an unencrypted private key")
}

// check refuses an incomplete group before anything is read.
func (f *attestFlags) check(cmd *cobra.Command) error {
	if f.on {
		if f.keyPath == "" {
			return errors.New("--attest needs --key")
		}
		if f.referrers {
			warnReferrers(cmd)
		}
		return nil
	}
	for _, n := range []string{"key", "referrers", "insecure-key"} {
		if cmd.Flags().Changed(n) {
			return fmt.Errorf("--%s only means something with --attest", n)
		}
	}
	return nil
}

// pendingAttestation is an --attest run between checking its flags and
// attaching the document: where to attach it, the key that will sign, and,
// once resolved, the digest to read.
type pendingAttestation struct {
	cmd       *cobra.Command
	ref       name.Reference
	store     *store.Remote
	key       *sign.Key
	referrers bool
	target    sign.Target
}

// prepare checks that src is a registry image and loads the key (asking
// for its password), before anything slow: a mistake costs nothing.
func (f *attestFlags) prepare(cmd *cobra.Command, src string, insecure bool) (*pendingAttestation, error) {
	reg := registryFlags{insecure: insecure}
	ref, st, err := reg.open(src)
	if err != nil {
		return nil, fmt.Errorf("--attest: %w", err)
	}
	key, err := loadSigningKey(f.keyPath, f.insecureKey)
	if err != nil {
		return nil, err
	}
	return &pendingAttestation{cmd: cmd, ref: ref, store: st, key: key, referrers: f.referrers}, nil
}

// resolve turns the reference into a digest, once; everything after reads
// and attests that digest.
func (p *pendingAttestation) resolve() error {
	t, err := sign.Resolve(p.cmd.Context(), p.store, p.ref)
	if err != nil {
		return err
	}
	reportResolved(p.cmd, p.ref, t)
	p.target = t
	return nil
}

// source names the resolved digest for image.Open, so the image read is
// the one resolved even if its tag moves meanwhile.
func (p *pendingAttestation) source() string { return "docker://" + p.target.String() }

// finish signs predicate as a statement of the given kind about the
// manifest that was read (scanned, a "sha256:…" digest) and attaches it.
func (p *pendingAttestation) finish(scanned, kind string, predicate []byte) error {
	ctx := p.cmd.Context()
	t := p.target
	if scanned != t.Manifest.Digest.String() {
		// The reference named an index and the image read is its
		// manifest for --platform: the document describes that manifest,
		// not the other platforms, so that is what it is attached to.
		// Anything else means the image read is not the one resolved.
		if !t.Manifest.MediaType.IsIndex() {
			return fmt.Errorf("--attest: read %s but resolved %s; nothing attached", scanned, t)
		}
		ref, err := name.NewDigest(t.Name + "@" + scanned)
		if err != nil {
			return fmt.Errorf("--attest: digest of the image read: %w", err)
		}
		if t, err = sign.Resolve(ctx, p.store, ref); err != nil {
			return err
		}
		fmt.Fprintf(p.cmd.ErrOrStderr(), "%s is an index; attesting its platform manifest %s\n", p.target, t.Manifest.Digest)
	}
	statement, err := sign.NewStatement(t, kind, predicate, time.Now())
	if err != nil {
		return fmt.Errorf("--attest: %w", err)
	}
	w, err := sign.Attest(ctx, p.store, t, statement, p.key, sign.AttestOptions{Referrers: p.referrers})
	if err != nil {
		return err
	}
	fmt.Fprintf(p.cmd.ErrOrStderr(), "attested %s (%s), stored in %s\n", t, statement.PredicateType, w.Ref)
	return nil
}
