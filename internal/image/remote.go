package image

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// openRemote reads an image from a registry. Credentials are opts.Auth
// when set, else they come from the docker config file (and its credential
// helpers), as docker, crane and cosign read them. Loopback registries are
// tried over HTTPS, then plain HTTP, without --insecure:
// go-containerregistry does that by itself.
func openRemote(ctx context.Context, src string, plat *v1.Platform, opts Options) (*Image, error) {
	insecure := opts.Insecure
	var nopts []name.Option
	if insecure {
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(src, nopts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %q is not a file, a directory or an image reference: %v", ErrBadSource, src, err)
	}
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithPlatform(*plat),
	}
	if opts.Auth != nil {
		ropts = append(ropts, remote.WithAuth(opts.Auth))
	} else {
		ropts = append(ropts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	}
	if insecure {
		// Self-signed registries are what --insecure is for, as with crane.
		tr := remote.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for by --insecure
		ropts = append(ropts, remote.WithTransport(tr))
	}
	img, err := remote.Image(ref, ropts...)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	return FromV1Image(img)
}

// FromV1Image adapts a go-containerregistry image (from a registry, or from
// the registry's own blob store). Layers are read through Compressed, which
// for remote images verifies the blob digest as it streams.
func FromV1Image(img v1.Image) (*Image, error) {
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("manifest digest: %w", err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", digest, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("%w: manifest %s has %d layers, its config %d diffIDs",
			ErrBadSource, digest, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	im := &Image{Digest: digest.String(), ConfigDigest: m.Config.Digest.String(), Config: cfg}
	cb := createdBy(cfg, len(m.Layers))
	for i, ld := range m.Layers {
		h := ld.Digest
		im.Layers = append(im.Layers, Layer{
			DiffID:    cfg.RootFS.DiffIDs[i].String(),
			Digest:    h.String(),
			MediaType: string(ld.MediaType),
			Size:      ld.Size,
			CreatedBy: cb[i],
			open: func(context.Context) (io.ReadCloser, error) {
				l, err := img.LayerByDigest(h)
				if err != nil {
					return nil, fmt.Errorf("layer %s: %w", h, err)
				}
				rc, err := l.Compressed()
				if err != nil {
					return nil, fmt.Errorf("layer %s: %w", h, err)
				}
				return rc, nil
			},
		})
	}
	return im, nil
}
