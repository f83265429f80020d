package scanservice

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/registry/event"
	"berth.dev/berth/internal/report"
)

// Annotations of the SBOM referrer.
const (
	// annotationInventory is the hash of the inventory the SBOM was made
	// from: a rescan that finds the same packages attaches nothing new.
	annotationInventory = "dev.berth.sbom.inventory"
	// Scanner is the actor of the service's own writes.
	Scanner = "berth:scanner"
)

// attachSBOM stores the report's inventory as a CycloneDX SBOM referrer of
// d in repos (every repository holding d when nil), and removes the SBOM referrers berth
// attached before for another inventory. The referrer lives and dies with
// its subject (garbage collection follows subjects).
func (s *Service) attachSBOM(ctx context.Context, d digest.Digest, r *match.Report, at time.Time, repos []string) error {
	ctx = event.WithActor(ctx, Scanner)
	invJSON, err := json.Marshal(r.Inventory.Packages)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(invJSON)
	invHash := "sha256:" + hex.EncodeToString(sum[:])
	var doc bytes.Buffer
	if err := report.EncodeSBOM(&doc, "cyclonedx", &r.Inventory, report.Options{
		Created:     at,
		DocumentID:  uuid.NewSHA1(uuid.NameSpaceURL, []byte("berth:"+d.String()+":"+invHash)),
		ToolVersion: s.opts.ToolVersion,
	}); err != nil {
		return fmt.Errorf("encode SBOM: %w", err)
	}
	config := []byte("{}")
	blobs := []struct {
		content []byte
		d       digest.Digest
	}{{config, digest.FromBytes(config)}, {doc.Bytes(), digest.FromBytes(doc.Bytes())}}
	for _, b := range blobs {
		if err := s.opts.Meta.TouchBlob(ctx, b.d); err != nil {
			return err
		}
		if _, err := s.opts.Blobs.Put(ctx, b.d, bytes.NewReader(b.content)); err != nil {
			return fmt.Errorf("store SBOM blob: %w", err)
		}
	}
	if repos == nil {
		if repos, err = s.opts.Meta.ManifestRepositories(ctx, d, -1); err != nil {
			return err
		}
	}
	for _, repo := range repos {
		if err := s.attachTo(ctx, repo, d, invHash, at, blobs[0].d, blobs[1].d, int64(len(doc.Bytes()))); err != nil {
			return fmt.Errorf("attach SBOM in %s: %w", repo, err)
		}
	}
	return nil
}

func (s *Service) attachTo(ctx context.Context, repo string, d digest.Digest, invHash string, at time.Time,
	configDigest, sbomDigest digest.Digest, sbomSize int64) error {
	subject, err := s.opts.Meta.Manifest(ctx, repo, d)
	if err != nil {
		return err
	}
	existing, err := s.opts.Meta.Referrers(ctx, repo, d, ArtifactTypeCycloneDX)
	if err != nil {
		return err
	}
	for _, e := range existing {
		if e.Annotations[annotationInventory] == invHash {
			return nil // already attached
		}
	}
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: ArtifactTypeCycloneDX,
		Config:       ocispec.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: configDigest, Size: 2},
		Layers:       []ocispec.Descriptor{{MediaType: ArtifactTypeCycloneDX, Digest: sbomDigest, Size: sbomSize}},
		Subject:      &ocispec.Descriptor{MediaType: subject.MediaType, Digest: d, Size: int64(len(subject.Content))},
		Annotations: map[string]string{
			ocispec.AnnotationCreated: at.UTC().Format(time.RFC3339),
			annotationInventory:       invHash,
		},
	}
	content, err := json.Marshal(m)
	if err != nil {
		return err
	}
	for _, b := range []struct {
		d    digest.Digest
		size int64
	}{{configDigest, 2}, {sbomDigest, sbomSize}} {
		if err := s.opts.Meta.LinkBlob(ctx, repo, b.d, b.size); err != nil {
			return err
		}
	}
	if err := s.opts.Meta.PutManifest(ctx, repo, &meta.Manifest{
		Digest: digest.FromBytes(content), MediaType: m.MediaType, ArtifactType: m.ArtifactType,
		Subject: d, Annotations: m.Annotations, Content: content,
		References: []meta.Reference{{Digest: configDigest, Kind: meta.RefBlob}, {Digest: sbomDigest, Kind: meta.RefBlob}},
	}, nil); err != nil {
		return err
	}
	// The SBOMs berth attached for earlier inventories are out of date.
	for _, e := range existing {
		if e.Annotations[annotationInventory] != "" {
			if _, err := s.opts.Meta.DeleteManifest(ctx, repo, e.Digest); err != nil {
				s.log.WarnContext(ctx, "could not remove an outdated SBOM referrer", "repository", repo, "digest", e.Digest, "error", err)
			}
		}
	}
	return nil
}
