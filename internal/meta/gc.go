package meta

import (
	"context"
	"time"

	"github.com/opencontainers/go-digest"
)

// GCManifest is one manifest of a repository as the garbage collector sees
// it.
type GCManifest struct {
	Digest   digest.Digest
	Subject  digest.Digest
	PushedAt time.Time
	Children []digest.Digest // manifests an index lists
}

// GCTag is one tag of a repository as the garbage collector sees it.
type GCTag struct {
	Name      string
	Digest    digest.Digest
	UpdatedAt time.Time
}

// Live decides which manifests of one repository survive garbage
// collection, and which fallback-schema tags go. Every Store implementation
// loads the repository's graph and calls it, so the rule is written once:
//
//   - Roots: manifests reached by an ordinary tag; manifests pushed at or
//     after policy.Before (a push may be in flight); and, unless
//     policy.Untagged, every manifest that is not attached to another.
//   - A manifest is attached when it has a subject (an OCI 1.1 referrer) or
//     when only fallback-schema tags ("sha256-<hex>", "sha256-<hex>.sig",
//     ".att", ".sbom": the tags cosign and referrer-less clients push)
//     reach it. Attached manifests live while their subject lives.
//   - Life flows from an index to the manifests it lists and from a
//     manifest to everything attached to it.
//
// dead lists the manifests to delete; staleTags the fallback tags, older
// than policy.Before, whose subject is not alive.
func Live(manifests []GCManifest, tags []GCTag, policy GCPolicy) (dead []digest.Digest, staleTags []string) {
	byDigest := make(map[digest.Digest]*GCManifest, len(manifests))
	referrers := map[digest.Digest][]digest.Digest{}
	for i := range manifests {
		m := &manifests[i]
		byDigest[m.Digest] = m
		if m.Subject != "" {
			referrers[m.Subject] = append(referrers[m.Subject], m.Digest)
		}
	}
	attachedByTag := map[digest.Digest][]digest.Digest{} // subject -> targets
	ordinaryTag := map[digest.Digest]bool{}
	fallbackOnly := map[digest.Digest]bool{}
	for _, t := range tags {
		if subject, ok := FallbackTagSubject(t.Name); ok {
			attachedByTag[subject] = append(attachedByTag[subject], t.Digest)
			if !ordinaryTag[t.Digest] {
				fallbackOnly[t.Digest] = true
			}
			continue
		}
		ordinaryTag[t.Digest] = true
		delete(fallbackOnly, t.Digest)
	}

	live := make(map[digest.Digest]bool, len(manifests))
	var queue []digest.Digest
	mark := func(d digest.Digest) {
		if _, ok := byDigest[d]; ok && !live[d] {
			live[d] = true
			queue = append(queue, d)
		}
	}
	for d := range ordinaryTag {
		mark(d)
	}
	for _, m := range manifests {
		attached := m.Subject != "" || fallbackOnly[m.Digest]
		if !m.PushedAt.Before(policy.Before) || (!policy.Untagged && !attached) {
			mark(m.Digest)
		}
	}
	for len(queue) > 0 {
		d := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, c := range byDigest[d].Children {
			mark(c)
		}
		for _, r := range referrers[d] {
			mark(r)
		}
		for _, r := range attachedByTag[d] {
			mark(r)
		}
	}
	for _, m := range manifests {
		if !live[m.Digest] {
			dead = append(dead, m.Digest)
		}
	}
	for _, t := range tags {
		subject, ok := FallbackTagSubject(t.Name)
		if ok && !live[subject] && live[t.Digest] && t.UpdatedAt.Before(policy.Before) {
			staleTags = append(staleTags, t.Name)
		}
	}
	return dead, staleTags
}

// FallbackTagSubject recognises the tags clients push to attach an artifact
// to a manifest on registries without the referrers API: the OCI referrers
// tag schema "<alg>-<hex>" and cosign's "<alg>-<hex>.sig", ".att" and
// ".sbom". It returns the subject's digest.
func FallbackTagSubject(tag string) (digest.Digest, bool) {
	var alg string
	var n int
	switch {
	case len(tag) >= 7+64 && tag[:7] == "sha256-":
		alg, n = "sha256", 64
	case len(tag) >= 7+128 && tag[:7] == "sha512-":
		alg, n = "sha512", 128
	default:
		return "", false
	}
	hex := tag[7 : 7+n]
	for i := 0; i < len(hex); i++ {
		if c := hex[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", false
		}
	}
	switch tag[7+n:] {
	case "", ".sig", ".att", ".sbom":
		return digest.Digest(alg + ":" + hex), true
	}
	return "", false
}

// BatchSweeper is implemented by stores that sweep blobs in batches whose
// content is removed outside any transaction, for blob stores that delete
// over the network (S3's DeleteObjects, 1,000 keys a request): holding a
// transaction open across those requests would hold connections and locks
// for as long as the network takes. Instead, while a batch is swept, every
// claim or link of its digests (TouchBlob, LinkBlob, LinkUploadedBlob,
// MountBlob) waits: a push of the same content either came before (the
// blob is in use and not swept) or writes it again after the removal, and
// a push that linked content the removal then took is told to push again
// by its check of the content after linking.
type BatchSweeper interface {
	// SweepBlobBatches finds blobs last used before the time given that
	// no repository links and no manifest references, in batches of at
	// most max; forgets those still unused (committed); calls remove with
	// them outside any transaction while their claims wait; and returns
	// every record forgotten. A failed removal leaves content that no row
	// names, for RemoveUnrecordedBlobs.
	SweepBlobBatches(ctx context.Context, before time.Time, max int, remove func([]BlobRecord) error) ([]BlobRecord, error)
	// RemoveUnrecordedBlobs calls remove with those of ds the store has no
	// record of, while claims of them wait, and returns them.
	RemoveUnrecordedBlobs(ctx context.Context, ds []digest.Digest, remove func([]digest.Digest) error) ([]digest.Digest, error)
}
