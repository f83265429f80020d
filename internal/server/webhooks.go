package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/custody"
	"berth.dev/berth/internal/registry/event"
	"berth.dev/berth/internal/reports"
	"berth.dev/berth/internal/scanservice"
	"berth.dev/berth/internal/webhook"
)

// What webhook receivers get in each event's data.

// ArtifactData is the data of dev.berth.artifact.pushed and .deleted.
type ArtifactData struct {
	Repository   string        `json:"repository"`
	Digest       digest.Digest `json:"digest"`
	MediaType    string        `json:"media_type,omitempty"`
	ArtifactType string        `json:"artifact_type,omitempty"`
	Tags         []string      `json:"tags"`
	Actor        string        `json:"actor,omitempty"`
}

// SignedData is the data of dev.berth.artifact.signed.
type SignedData struct {
	Repository string        `json:"repository"`
	Digest     digest.Digest `json:"digest"` // the signed artifact
	// Signature is the manifest that carries the signature; Format is
	// "cosign" (the sha256-<hex>.sig tag) or "sigstore-bundle" (an OCI
	// referrer).
	Signature digest.Digest `json:"signature"`
	Format    string        `json:"format"`
	Actor     string        `json:"actor,omitempty"`
}

// ScanData is the data of dev.berth.scan.completed, .scan.failed and
// .vulnerabilities.new.
type ScanData struct {
	Repository string                   `json:"repository"`
	Digest     digest.Digest            `json:"digest"`
	Tags       []string                 `json:"tags"`
	Scan       reports.Scan             `json:"scan"`
	Summary    *reports.Summary         `json:"summary,omitempty"`
	New        []scanservice.NewFinding `json:"new,omitempty"`
	// Approval is the revoked approval of dev.berth.approval.revoked.
	Approval *custody.Approval `json:"approval,omitempty"`
}

// cosignBundle is the artifact type of cosign v3's bundle referrers.
const cosignBundle = "application/vnd.dev.sigstore.bundle.v0.3+json"

// projectID is the identity of repo's project, or "" when it has none
// (authentication off, or a project deleted since).
func (s *Server) projectID(repo string) string {
	if s.sec.auth == nil {
		return ""
	}
	p, err := s.sec.auth.Project(auth.ProjectOf(repo))
	if err != nil {
		return ""
	}
	return p.ID
}

// dispatch hands one event to the project's webhooks.
func (s *Server) dispatch(ctx context.Context, repo string, ev webhook.Event) {
	if s.bg.deliveries == nil {
		return
	}
	id := s.projectID(repo)
	if id == "" {
		return
	}
	if err := s.bg.deliveries.Dispatch(ctx, id, ev); err != nil {
		s.log.WarnContext(ctx, "webhook event not queued", "type", ev.Type, "repository", repo, "error", err)
	}
}

// eventID derives a stable event id from what caused it, so that an
// event dispatched again after a crash is recognised and not delivered
// twice.
func eventID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:16])
}

// notifyWebhooks turns a scan notice into its webhook event.
func (s *Server) notifyWebhooks(ctx context.Context, n scanservice.Notice) {
	tags := n.Tags
	if tags == nil {
		tags = []string{}
	}
	at := n.Scan.FinishedAt
	if n.Type == scanservice.NoticeVulnerabilitiesNew {
		at = n.Scan.DBUpdatedAt
	}
	if n.Approval != nil {
		at = n.Approval.At
	}
	if at.IsZero() {
		at = time.Now()
	}
	s.dispatch(ctx, n.Repository, webhook.Event{
		ID:      eventID(n.Type, n.Repository, n.Digest.String(), at.UTC().Format(time.RFC3339Nano)),
		Type:    n.Type,
		Subject: n.Repository + "@" + n.Digest.String(),
		Time:    at,
		Data: ScanData{Repository: n.Repository, Digest: n.Digest, Tags: tags, Scan: n.Scan, Summary: n.Summary, New: n.New,
			Approval: n.Approval},
	})
}

// changeWebhooks turns a registry change read from the outbox into its
// webhook events: pushes, deletes, and signatures arriving.
func (s *Server) changeWebhooks(ctx context.Context, e event.Event) {
	id := func(kind string) string { return eventID(kind, fmt.Sprint(e.Seq), e.Repository, e.Digest.String()) }
	tags := e.Tags
	if tags == nil {
		tags = []string{}
	}
	data := ArtifactData{Repository: e.Repository, Digest: e.Digest, MediaType: e.MediaType, ArtifactType: e.ArtifactType,
		Tags: tags, Actor: e.Actor}
	switch e.Kind {
	case event.ManifestPushed:
		s.dispatch(ctx, e.Repository, webhook.Event{ID: id(webhook.TypeArtifactPushed), Type: webhook.TypeArtifactPushed,
			Subject: e.Repository + "@" + e.Digest.String(), Time: e.At, Data: data})
		if signed, format := signatureOf(e); signed != "" {
			s.dispatch(ctx, e.Repository, webhook.Event{ID: id(webhook.TypeArtifactSigned), Type: webhook.TypeArtifactSigned,
				Subject: e.Repository + "@" + signed.String(), Time: e.At,
				Data: SignedData{Repository: e.Repository, Digest: signed, Signature: e.Digest, Format: format, Actor: e.Actor}})
		}
	case event.ManifestDeleted:
		s.dispatch(ctx, e.Repository, webhook.Event{ID: id(webhook.TypeArtifactDeleted), Type: webhook.TypeArtifactDeleted,
			Subject: e.Repository + "@" + e.Digest.String(), Time: e.At, Data: data})
	}
}

// signatureOf recognises a pushed signature: cosign's tag scheme
// (sha256-<hex>.sig, naming the signed digest) or a sigstore bundle
// referrer (its subject). It returns the signed digest and the format.
func signatureOf(e event.Event) (digest.Digest, string) {
	if e.ArtifactType == cosignBundle && e.Subject != "" {
		return e.Subject, "sigstore-bundle"
	}
	for _, t := range e.Tags {
		hexPart, ok := strings.CutSuffix(t, ".sig")
		if !ok {
			continue
		}
		hexPart, ok = strings.CutPrefix(hexPart, "sha256-")
		if !ok {
			continue
		}
		if d := digest.NewDigestFromEncoded(digest.SHA256, hexPart); d.Validate() == nil {
			return d, "cosign"
		}
	}
	return "", ""
}
