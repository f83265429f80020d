package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/store"
)

// registryFlags are the flags of every command that talks to a registry to
// sign or verify: cosign's names, so scripts written for cosign work, and
// berth's --insecure, the spelling every other berth command uses, which
// sets both.
type registryFlags struct {
	allowHTTP     bool
	allowInsecure bool
	insecure      bool
}

func (f *registryFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.allowHTTP, "allow-http-registry", false, "talk plain HTTP to the registry (loopback registries always may)")
	cmd.Flags().BoolVar(&f.allowInsecure, "allow-insecure-registry", false, "skip TLS certificate verification")
	cmd.Flags().BoolVar(&f.insecure, "insecure", false, "allow plain HTTP and unverified TLS for registries off the loopback interface (both flags above)")
}

// registryTransports are the prefixes that name a registry explicitly, as
// skopeo and syft users write them; image.Open accepts them too.
var registryTransports = []string{"docker://", "registry:"}

// localTransports are the image sources that are not in a registry.
var localTransports = []string{"oci-archive:", "docker-archive:", "oci-dir:", "oci:", "dir:"}

// open parses image as a registry reference and returns it with a store for
// its registry. Archives and directories are refused: there is no registry
// to find signatures in or attach them to.
func (f *registryFlags) open(image string) (name.Reference, *store.Remote, error) {
	refStr := image
	for _, transport := range registryTransports {
		refStr = strings.TrimPrefix(refStr, transport)
	}
	if refStr == image && isLocalImage(image) {
		return nil, nil, fmt.Errorf("%s is not in a registry: signatures and attestations are attached to an image in a registry; push it and give its registry reference", image)
	}
	allowHTTP, allowInsecure := f.allowHTTP || f.insecure, f.allowInsecure || f.insecure
	var nameOpts []name.Option
	if allowHTTP {
		nameOpts = append(nameOpts, name.Insecure)
	}
	ref, err := name.ParseReference(refStr, nameOpts...)
	if err != nil {
		return nil, nil, fmt.Errorf("image reference %q: %w", image, err)
	}
	opts := []remote.Option{
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithUserAgent("berth/" + version),
	}
	if allowInsecure {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked for it
		opts = append(opts, remote.WithTransport(tr))
	}
	st, err := store.NewRemote(ref.Context().Registry, opts...)
	if err != nil {
		return nil, nil, err
	}
	return ref, st, nil
}

// isLocalImage reports whether image names an archive or a directory the
// way image.Open reads it: a local transport, an existing path, or a name
// that can only be meant as a path ("./app.tar").
func isLocalImage(image string) bool {
	for _, transport := range localTransports {
		if strings.HasPrefix(image, transport) {
			return true
		}
	}
	if _, err := os.Stat(image); err == nil {
		return true
	}
	return strings.HasPrefix(image, "/") || strings.HasPrefix(image, "./") || strings.HasPrefix(image, "../") ||
		strings.HasSuffix(image, ".tar") || strings.HasSuffix(image, ".tar.gz")
}

// parseAnnotations reads repeated -a key=value flags.
func parseAnnotations(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("annotation %q: want key=value", p)
		}
		out[k] = v
	}
	return out, nil
}

// reportResolved says which digest a tag resolved to, so that what was
// signed or verified is never ambiguous.
func reportResolved(cmd *cobra.Command, ref name.Reference, t sign.Target) {
	if _, byDigest := ref.(name.Digest); !byDigest {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s resolved to %s\n", ref, t.Manifest.Digest)
	}
}

func newSignCmd() *cobra.Command {
	var (
		keyPath     string
		annotations []string
		referrers   bool
		insecureKey bool
		reg         registryFlags
		cf          cosignFlags
		outputs     signOutputs
	)
	cmd := &cobra.Command{
		Use:   "sign IMAGE --key KEY",
		Short: "Sign an image's manifest digest (cosign-compatible)",
		Long: `Sign an image in a registry. A tag is resolved to its manifest digest first and
the digest is what gets signed; the command prints it.

By default the signature is stored as cosign v2 stores it: a layer appended to
the manifest tagged sha256-<hex>.sig, next to any signatures already there.
With --referrers it is stored as cosign v3 stores it: a sigstore bundle in an
OCI 1.1 referrer of the image.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyPath == "" {
				return fmt.Errorf("--key is required")
			}
			if err := cf.check(cmd); err != nil {
				return err
			}
			if err := outputs.check(cmd, referrers); err != nil {
				return err
			}
			if referrers {
				warnReferrers(cmd)
			}
			ann, err := parseAnnotations(annotations)
			if err != nil {
				return err
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
			pr.spin("signing " + t.String())
			w, err := sign.Sign(ctx, st, t, key, sign.SignOptions{Annotations: ann, Referrers: referrers})
			pr.done()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signed %s\n", t)
			fmt.Fprintf(cmd.ErrOrStderr(), "signature stored in %s\n", w.Ref)
			return outputs.write(w)
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "private key file (cosign or berth format)")
	cmd.Flags().StringArrayVarP(&annotations, "annotations", "a", nil, "extra key=value to sign into the payload (repeatable)")
	cmd.Flags().BoolVar(&referrers, "referrers", false, "store a sigstore bundle as an OCI 1.1 referrer (cosign v3) instead of the .sig tag (cosign v2)")
	cmd.Flags().BoolVar(&insecureKey, "insecure-key", false, "accept an unencrypted private key")
	reg.add(cmd)
	cf.addSigning(cmd)
	outputs.add(cmd)
	return cmd
}
