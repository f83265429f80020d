package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/blob"
	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/reports"
	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/store"
)

// Platform is what an image runs on.
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

// SignatureSummary says whether an artifact carries signatures and which
// of the project's trusted keys vouch for it.
type SignatureSummary struct {
	// Signatures counts the signatures stored beside the artifact,
	// verified or not.
	Signatures int `json:"signatures"`
	// TrustConfigured is set when the project has trusted keys; VerifiedBy
	// then names those that vouch (empty: none does).
	TrustConfigured bool     `json:"trust_configured"`
	VerifiedBy      []string `json:"verified_by"`
}

// ArtifactDetail is one artifact with what its manifest and config say.
type ArtifactDetail struct {
	Artifact
	Annotations map[string]string `json:"annotations,omitempty"`
	// Manifests are an index's images.
	Manifests []PlatformManifest `json:"manifests,omitempty"`
	// Layers and Config are an image's.
	Layers  []Layer       `json:"layers,omitempty"`
	Config  *ImageConfig  `json:"config,omitempty"`
	Subject digest.Digest `json:"subject,omitempty"`
}

// PlatformManifest is one entry of an index.
type PlatformManifest struct {
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"media_type"`
	Size      int64         `json:"size"`
	Platform  *Platform     `json:"platform,omitempty"`
}

// Layer is one layer of an image, with the history entry that made it.
type Layer struct {
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"media_type"`
	Size      int64         `json:"size"`
	DiffID    string        `json:"diff_id,omitempty"`
	CreatedBy string        `json:"created_by,omitempty"`
}

// ImageConfig is what an image's config says about how it was built and
// runs. The environment is left out: it often holds credentials.
type ImageConfig struct {
	Digest     digest.Digest     `json:"digest"`
	Created    *time.Time        `json:"created,omitempty"`
	User       string            `json:"user,omitempty"`
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Cmd        []string          `json:"cmd,omitempty"`
	WorkingDir string            `json:"working_dir,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	History    []HistoryEntry    `json:"history"`
}

// HistoryEntry is one step of an image's build.
type HistoryEntry struct {
	Created    *time.Time `json:"created,omitempty"`
	CreatedBy  string     `json:"created_by,omitempty"`
	Comment    string     `json:"comment,omitempty"`
	EmptyLayer bool       `json:"empty_layer,omitempty"`
}

// maxConfigSize bounds the image configs read for display.
const maxConfigSize = 4 << 20

func (a *API) getArtifact(c *call) error {
	repo, err := a.pullable(c)
	if err != nil {
		return err
	}
	m, err := a.resolve(c, repo)
	if err != nil {
		return err
	}
	tags, err := a.opts.Meta.ManifestTags(c.ctx(), repo, m.Digest)
	if err != nil {
		return err
	}
	if tags == nil {
		tags = []string{}
	}
	out := ArtifactDetail{Artifact: Artifact{Digest: m.Digest, MediaType: m.MediaType, ArtifactType: m.ArtifactType,
		Size: int64(len(m.Content)), PushedAt: m.PushedAt.UTC(), Tags: tags}, Annotations: m.Annotations, Subject: m.Subject}
	if err := a.describe(c.ctx(), repo, m, &out); err != nil {
		return err
	}
	recs, err := a.opts.Reports.Records(c.ctx(), []digest.Digest{m.Digest})
	if err != nil {
		return err
	}
	out.Artifact.setScan(recs[m.Digest])
	if out.Signatures, err = a.signatureSummary(c.ctx(), repo, m.Digest, int64(len(m.Content)), types.MediaType(m.MediaType)); err != nil {
		return err
	}
	return respond(c, http.StatusOK, out)
}

func (art *Artifact) setScan(rec *reports.Record) {
	if rec == nil {
		return
	}
	sc := rec.Scan
	art.Scan = &sc
	if rec.HasReport() {
		sum := rec.Summary
		art.Summary = &sum
	}
}

// describe fills what m's content and its image config say: an index's
// platforms, an image's layers, config and history.
func (a *API) describe(ctx context.Context, repo string, m *meta.Manifest, out *ArtifactDetail) error {
	var probe struct {
		Manifests []v1.Descriptor `json:"manifests"`
		Config    *v1.Descriptor  `json:"config"`
		Layers    []v1.Descriptor `json:"layers"`
	}
	if err := json.Unmarshal(m.Content, &probe); err != nil {
		// The registry stored it; a manifest it cannot describe is shown
		// as it is listed.
		return nil
	}
	for _, d := range probe.Manifests {
		pm := PlatformManifest{Digest: digest.Digest(d.Digest.String()), MediaType: string(d.MediaType), Size: d.Size}
		if d.Platform != nil {
			pm.Platform = &Platform{OS: d.Platform.OS, Architecture: d.Platform.Architecture, Variant: d.Platform.Variant}
			out.Platforms = append(out.Platforms, *pm.Platform)
		}
		out.Manifests = append(out.Manifests, pm)
	}
	for _, l := range probe.Layers {
		out.Layers = append(out.Layers, Layer{Digest: digest.Digest(l.Digest.String()), MediaType: string(l.MediaType), Size: l.Size})
	}
	if probe.Config == nil || !isImageConfig(probe.Config.MediaType) {
		return nil
	}
	cfg, err := a.imageConfig(ctx, repo, digest.Digest(probe.Config.Digest.String()))
	if err != nil || cfg == nil {
		return err
	}
	out.Platforms = append(out.Platforms, Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant})
	ic := &ImageConfig{Digest: digest.Digest(probe.Config.Digest.String()), User: cfg.Config.User, Entrypoint: cfg.Config.Entrypoint,
		Cmd: cfg.Config.Cmd, WorkingDir: cfg.Config.WorkingDir, Labels: cfg.Config.Labels, History: []HistoryEntry{}}
	if !cfg.Created.IsZero() {
		t := cfg.Created.UTC()
		ic.Created = &t
	}
	layer := 0
	for _, h := range cfg.History {
		e := HistoryEntry{CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer}
		if !h.Created.IsZero() {
			t := h.Created.UTC()
			e.Created = &t
		}
		ic.History = append(ic.History, e)
		if !h.EmptyLayer && layer < len(out.Layers) {
			out.Layers[layer].CreatedBy = h.CreatedBy
			layer++
		}
	}
	for i, d := range cfg.RootFS.DiffIDs {
		if i < len(out.Layers) {
			out.Layers[i].DiffID = d.String()
		}
	}
	out.Config = ic
	return nil
}

// isImageConfig reports whether a manifest's config is an image's (OCI or
// Docker), not an artifact's.
func isImageConfig(mt types.MediaType) bool {
	return mt == types.OCIConfigJSON || mt == types.DockerConfigJSON
}

// imageConfig reads and decodes an image config linked to repo; nil when
// it is absent or not a config berth can read.
func (a *API) imageConfig(ctx context.Context, repo string, d digest.Digest) (*v1.ConfigFile, error) {
	raw, err := a.readBlob(ctx, repo, d, maxConfigSize)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var cfg v1.ConfigFile
	if json.Unmarshal(raw, &cfg) != nil {
		return nil, nil
	}
	return &cfg, nil
}

// platformOf reads the platforms of an artifact for listings: an index's
// entries, or an image config's os and architecture.
func (a *API) platformsOf(ctx context.Context, repo string, d digest.Digest) ([]Platform, error) {
	m, err := a.opts.Meta.Manifest(ctx, repo, d)
	if errors.Is(err, meta.ErrManifestUnknown) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var probe struct {
		Manifests []v1.Descriptor `json:"manifests"`
		Config    *v1.Descriptor  `json:"config"`
	}
	if json.Unmarshal(m.Content, &probe) != nil {
		return nil, nil
	}
	var out []Platform
	for _, e := range probe.Manifests {
		if e.Platform != nil && e.Platform.OS != "unknown" {
			out = append(out, Platform{OS: e.Platform.OS, Architecture: e.Platform.Architecture, Variant: e.Platform.Variant})
		}
	}
	if probe.Config != nil && isImageConfig(probe.Config.MediaType) {
		var cfg struct {
			OS           string `json:"os"`
			Architecture string `json:"architecture"`
			Variant      string `json:"variant"`
		}
		raw, err := a.readBlob(ctx, repo, digest.Digest(probe.Config.Digest.String()), maxConfigSize)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if err == nil && json.Unmarshal(raw, &cfg) == nil && cfg.OS != "" {
			out = append(out, Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant})
		}
	}
	return out, nil
}

// readBlob reads a blob repo may read, at most limit bytes, checked
// against its digest; store.ErrNotFound when it is not there.
func (a *API) readBlob(ctx context.Context, repo string, d digest.Digest, limit int64) ([]byte, error) {
	if a.opts.Blobs == nil {
		return nil, store.ErrNotFound
	}
	if err := d.Validate(); err != nil {
		return nil, store.ErrNotFound
	}
	size, err := a.opts.Meta.BlobSize(ctx, repo, d)
	if errors.Is(err, meta.ErrBlobUnknown) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if size > limit {
		return nil, fmt.Errorf("blob %s is %d bytes, more than the %d read here", d, size, limit)
	}
	f, _, err := a.opts.Blobs.Open(ctx, d)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", d, err)
	}
	if int64(len(raw)) > limit || d.Algorithm().FromBytes(raw) != d {
		return nil, fmt.Errorf("blob %s does not match its digest", d)
	}
	return raw, nil
}

// localStore is sign's view of berth's own registry: manifests from the
// meta store, blobs from the blob store, each only as linked to the
// repository, so verification reads exactly what a pull would.
type localStore struct {
	a *API
}

func (s localStore) Resolve(ctx context.Context, repo, reference string) (v1.Descriptor, error) {
	m, err := s.Manifest(ctx, repo, reference)
	return m.Descriptor, err
}

func (s localStore) Manifest(ctx context.Context, repo, reference string) (store.Manifest, error) {
	d, err := digest.Parse(reference)
	if err != nil {
		if d, err = s.a.opts.Meta.Tag(ctx, repo, reference); err != nil {
			if errors.Is(err, meta.ErrTagUnknown) || errors.Is(err, meta.ErrRepositoryUnknown) {
				return store.Manifest{}, store.ErrNotFound
			}
			return store.Manifest{}, err
		}
	}
	m, err := s.a.opts.Meta.Manifest(ctx, repo, d)
	if errors.Is(err, meta.ErrManifestUnknown) || errors.Is(err, meta.ErrRepositoryUnknown) {
		return store.Manifest{}, store.ErrNotFound
	}
	if err != nil {
		return store.Manifest{}, err
	}
	h, err := v1.NewHash(m.Digest.String())
	if err != nil {
		return store.Manifest{}, store.ErrNotFound
	}
	return store.Manifest{Descriptor: v1.Descriptor{MediaType: types.MediaType(m.MediaType), Digest: h, Size: int64(len(m.Content)),
		ArtifactType: m.ArtifactType, Annotations: m.Annotations}, Body: m.Content}, nil
}

func (s localStore) Blob(ctx context.Context, repo string, d v1.Hash) ([]byte, error) {
	return s.a.readBlob(ctx, repo, digest.Digest(d.String()), store.MaxBlobSize)
}

func (s localStore) Referrers(ctx context.Context, repo string, d v1.Hash) ([]v1.Descriptor, error) {
	refs, err := s.a.opts.Meta.Referrers(ctx, repo, digest.Digest(d.String()), "")
	if errors.Is(err, meta.ErrRepositoryUnknown) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]v1.Descriptor, 0, len(refs))
	for _, r := range refs {
		h, err := v1.NewHash(r.Digest.String())
		if err != nil {
			continue
		}
		out = append(out, v1.Descriptor{MediaType: types.MediaType(r.MediaType), Digest: h, Size: r.Size,
			ArtifactType: r.ArtifactType, Annotations: r.Annotations})
	}
	return out, nil
}

var _ store.Reader = localStore{}

// SignatureEntry is one signature or attestation stored beside an artifact.
type SignatureEntry struct {
	Source string `json:"source"`
	// Format is "cosign-v2" (the .sig/.att tag) or "sigstore-bundle" (an
	// OCI 1.1 referrer).
	Format string `json:"format"`
	// Verified is set when at least one of the project's trusted keys
	// vouches for it; Keys names them.
	Verified      bool              `json:"verified"`
	Keys          []string          `json:"keys,omitempty"`
	PredicateType string            `json:"predicate_type,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
	KeyHint       string            `json:"key_hint,omitempty"`
	// Error says why it does not verify (or could not be read).
	Error string `json:"error,omitempty"`
}

// SignatureReport lists an artifact's signatures and attestations, verified
// against the keys its project trusts when it has any.
type SignatureReport struct {
	Digest          digest.Digest    `json:"digest"`
	TrustConfigured bool             `json:"trust_configured"`
	Signatures      []SignatureEntry `json:"signatures"`
	Attestations    []SignatureEntry `json:"attestations"`
}

func (a *API) artifactSignatures(c *call) error {
	repo, err := a.pullable(c)
	if err != nil {
		return err
	}
	m, err := a.resolve(c, repo)
	if err != nil {
		return err
	}
	rep, err := a.signatures(c.ctx(), repo, m.Digest, int64(len(m.Content)), types.MediaType(m.MediaType))
	if err != nil {
		return err
	}
	return respond(c, http.StatusOK, rep)
}

func (a *API) trustOf(project string) (*sign.Trust, error) {
	if a.opts.Trust == nil {
		return nil, nil
	}
	t, err := a.opts.Trust(project)
	if err != nil {
		return nil, fmt.Errorf("trusted keys of project %s: %w", project, err)
	}
	return t, nil
}

func formatOf(source string) string {
	if strings.Contains(source, ".sig layer") || strings.Contains(source, ".att layer") ||
		strings.HasSuffix(source, ".sig") || strings.HasSuffix(source, ".att") {
		return "cosign-v2"
	}
	return "sigstore-bundle"
}

// signatures reads (and, with trusted keys, verifies) what is stored
// beside the manifest d of repo.
func (a *API) signatures(ctx context.Context, repo string, d digest.Digest, size int64, mt types.MediaType) (*SignatureReport, error) {
	h, err := v1.NewHash(d.String())
	if err != nil {
		return nil, err
	}
	t := sign.Target{Name: repo, Repo: repo, Manifest: v1.Descriptor{MediaType: mt, Digest: h, Size: size}}
	rep := &SignatureReport{Digest: d, Signatures: []SignatureEntry{}, Attestations: []SignatureEntry{}}
	trust, err := a.trustOf(auth.ProjectOf(repo))
	if err != nil {
		return nil, err
	}
	st := localStore{a}
	if trust == nil {
		found, err := sign.Inspect(ctx, st, t)
		if err != nil {
			return nil, err
		}
		for _, f := range found {
			e := SignatureEntry{Source: f.Source, Format: f.Format, PredicateType: f.PredicateType, Annotations: f.Annotations, KeyHint: f.KeyHint}
			if f.Err != nil {
				e.Error = f.Err.Error()
			}
			if f.Kind == "signature" {
				rep.Signatures = append(rep.Signatures, e)
			} else {
				rep.Attestations = append(rep.Attestations, e)
			}
		}
		return rep, nil
	}
	rep.TrustConfigured = true
	for _, kind := range []string{"signature", "attestation"} {
		verify := sign.Verify
		list := &rep.Signatures
		if kind == "attestation" {
			verify, list = sign.VerifyAttestations, &rep.Attestations
		}
		res, verr := verify(ctx, st, t, *trust, sign.VerifyOptions{ArrivedAt: meta.ArrivalLookup(a.opts.Meta)})
		if res == nil {
			return nil, verr
		}
		bySource := map[string]int{}
		for _, v := range res.Verified {
			i, ok := bySource[v.Source]
			if !ok {
				e := SignatureEntry{Source: v.Source, Format: formatOf(v.Source), Verified: true, PredicateType: v.PredicateType}
				if kind == "signature" {
					e.PredicateType = ""
					e.Annotations = payloadAnnotations(v.Payload)
				}
				*list = append(*list, e)
				i = len(*list) - 1
				bySource[v.Source] = i
			}
			(*list)[i].Keys = append((*list)[i].Keys, v.Key)
		}
		for _, r := range res.Rejected {
			*list = append(*list, SignatureEntry{Source: r.Source, Format: formatOf(r.Source), Error: r.Err.Error()})
		}
	}
	return rep, nil
}

// payloadAnnotations reads the signed-in annotations of a verified
// signature's payload (simple signing, or a bundle shown in that shape).
func payloadAnnotations(p []byte) map[string]string {
	var sp struct {
		Optional map[string]any `json:"optional"`
	}
	if json.Unmarshal(p, &sp) != nil || len(sp.Optional) == 0 {
		return nil
	}
	out := make(map[string]string, len(sp.Optional))
	for k, v := range sp.Optional {
		out[k] = fmt.Sprint(v)
	}
	return out
}

// signatureSummary counts an artifact's signatures and names the trusted
// keys that vouch for it, for listings.
func (a *API) signatureSummary(ctx context.Context, repo string, d digest.Digest, size int64, mt types.MediaType) (*SignatureSummary, error) {
	rep, err := a.signatures(ctx, repo, d, size, mt)
	if err != nil {
		return nil, err
	}
	sum := &SignatureSummary{Signatures: len(rep.Signatures), TrustConfigured: rep.TrustConfigured, VerifiedBy: []string{}}
	seen := map[string]bool{}
	for _, s := range rep.Signatures {
		for _, k := range s.Keys {
			if !seen[k] {
				seen[k] = true
				sum.VerifiedBy = append(sum.VerifiedBy, k)
			}
		}
	}
	return sum, nil
}
