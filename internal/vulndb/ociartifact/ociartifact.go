// Package ociartifact publishes a vulnerability database bundle as an OCI
// artifact and fetches it back, with go-containerregistry's remote client:
// an OCI image manifest with artifactType application/vnd.berth.vulndb.v1,
// the empty config, one layer (the bundle) and annotations with the record
// counts and update time. Registries on loopback or private addresses are
// spoken to over plain HTTP, as crane does.
package ociartifact

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/internal/vulndb"
	"berth.dev/berth/internal/vulndb/bundle"
)

// ArtifactType marks a berth vulnerability database in a registry.
const ArtifactType = "application/vnd.berth.vulndb.v1"

// Annotation keys on the manifest.
const (
	AnnotationRecords  = "dev.berth.vulndb.records"
	AnnotationPackages = "dev.berth.vulndb.packages"
	AnnotationUpdated  = "dev.berth.vulndb.updated"
	AnnotationSchema   = "dev.berth.vulndb.schema"
	// AnnotationEcosystems is a JSON object of record counts per ecosystem.
	AnnotationEcosystems = "dev.berth.vulndb.ecosystems"
)

// emptyConfig is the OCI empty descriptor's content.
var emptyConfig = []byte("{}")

func remoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
}

// Push exports the DB in dir and pushes it to ref. It returns the digest of
// the pushed manifest.
func Push(ctx context.Context, dir, ref string, now time.Time, opts ...remote.Option) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	tmp, err := os.CreateTemp("", "berth-vulndb-*.tar.zst")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	m, err := bundle.Export(ctx, dir, io.MultiWriter(tmp, h), now)
	if err != nil {
		return "", err
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return "", err
	}
	layer := &fileLayer{path: tmp.Name(), size: size, digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}}
	config := static.NewLayer(emptyConfig, types.MediaType(ocispec.MediaTypeEmptyJSON))

	ropts := append(remoteOptions(ctx), opts...)
	for _, l := range []v1.Layer{config, layer} {
		if err := remote.WriteLayer(r.Context(), l, ropts...); err != nil {
			return "", fmt.Errorf("push %s: %w", ref, err)
		}
	}
	ecos, err := json.Marshal(m.Info.Ecosystems)
	if err != nil {
		return "", err
	}
	cd, _ := config.Digest()
	man := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: ArtifactType,
		Config: ocispec.Descriptor{
			MediaType: ocispec.MediaTypeEmptyJSON,
			Digest:    digest.Digest(cd.String()),
			Size:      int64(len(emptyConfig)),
			Data:      emptyConfig,
		},
		Layers: []ocispec.Descriptor{{
			MediaType:   bundle.MediaType,
			Digest:      digest.Digest(layer.digest.String()),
			Size:        size,
			Annotations: map[string]string{ocispec.AnnotationTitle: "berth-vulndb.tar.zst"},
		}},
		Annotations: map[string]string{
			ocispec.AnnotationCreated: now.UTC().Format(time.RFC3339),
			AnnotationUpdated:         m.Info.UpdatedAt.UTC().Format(time.RFC3339),
			AnnotationRecords:         strconv.Itoa(m.Info.Records),
			AnnotationPackages:        strconv.Itoa(m.Info.Packages),
			AnnotationSchema:          strconv.Itoa(m.Info.SchemaVersion),
			AnnotationEcosystems:      string(ecos),
		},
	}
	man.SchemaVersion = 2
	raw, err := json.Marshal(man)
	if err != nil {
		return "", err
	}
	if err := remote.Put(r, rawManifest(raw), ropts...); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	d, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// Pull fetches the DB artifact at ref and installs it in the workspace,
// after the bundle's own checks (layer digest, manifest checksum, DB check).
func Pull(ctx context.Context, ref string, ws *vulndb.Workspace, opts ...remote.Option) (*vulndb.Info, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	ropts := append(remoteOptions(ctx), opts...)
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(desc.Manifest, &man); err != nil {
		return nil, fmt.Errorf("pull %s: manifest: %w", ref, err)
	}
	if man.ArtifactType != ArtifactType && man.Config.MediaType != ArtifactType {
		return nil, fmt.Errorf("pull %s: not a berth vulnerability database (artifactType %q)", ref, man.ArtifactType)
	}
	var layer *ocispec.Descriptor
	for i := range man.Layers {
		if man.Layers[i].MediaType == bundle.MediaType {
			layer = &man.Layers[i]
			break
		}
	}
	if layer == nil {
		return nil, fmt.Errorf("pull %s: no %s layer", ref, bundle.MediaType)
	}
	l, err := remote.Layer(r.Context().Digest(layer.Digest.String()), ropts...)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	// The remote layer's reader checks the digest when it reaches the end.
	rc, err := l.Compressed()
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	defer rc.Close()
	info, err := bundle.Import(ctx, rc, ws)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	return info, nil
}

type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error) { return m, nil }

func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
