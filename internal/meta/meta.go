// Package meta is berth's metadata store: repositories, tags, manifests (their
// bytes included), which blobs each repository may read, referrers and
// unfinished uploads. Blob content lives in internal/blob.
//
// The Store interface has one implementation per database (SQLite embedded,
// PostgreSQL for scale-out) sharing one SQL model; metatest is the suite all
// of them pass. Every method that changes several rows does so in one
// transaction, so concurrent pushes, deletes and garbage collection see each
// other's changes whole or not at all.
package meta

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/registry/event"
)

// Errors returned by every Store implementation; test them with errors.Is.
var (
	ErrRepositoryUnknown = errors.New("repository unknown")
	ErrBlobUnknown       = errors.New("blob unknown to repository")
	ErrManifestUnknown   = errors.New("manifest unknown")
	ErrTagUnknown        = errors.New("tag unknown")
	ErrUploadUnknown     = errors.New("upload unknown")
	ErrUploadExists      = errors.New("upload already exists")
	ErrTooManyUploads    = errors.New("too many unfinished uploads")
)

// UploadLimit bounds the unfinished upload sessions CreateUpload allows;
// zero fields do not limit.
type UploadLimit struct {
	PerRepository int
	PerAccount    int
}

// TooManyUploadsError is returned by CreateUpload when a limit is reached.
// It matches ErrTooManyUploads.
type TooManyUploadsError struct {
	Scope string // "repository" or "account"
	Limit int
}

func (e *TooManyUploadsError) Error() string {
	return fmt.Sprintf("%v: %d open for this %s", ErrTooManyUploads, e.Limit, e.Scope)
}

func (e *TooManyUploadsError) Is(target error) bool { return target == ErrTooManyUploads }

// MissingBlobsError is returned by PutManifest when required blobs are not
// readable from the repository. It matches ErrBlobUnknown.
type MissingBlobsError struct {
	Digests []digest.Digest
	// Collected lists those of Digests that the repository held until
	// garbage collection pruned them (uploaded longer than the grace
	// period before the manifest arrived): the client must push them
	// again.
	Collected []digest.Digest
}

func (e *MissingBlobsError) Error() string {
	s := make([]string, len(e.Digests))
	for i, d := range e.Digests {
		s[i] = d.String()
	}
	return fmt.Sprintf("%v: %s", ErrBlobUnknown, strings.Join(s, ", "))
}

func (e *MissingBlobsError) Is(target error) bool { return target == ErrBlobUnknown }

// RefKind says what a manifest's reference points to.
type RefKind int

const (
	// RefBlob is a blob the manifest cannot do without (an image config);
	// PutManifest requires it to be readable from the repository.
	RefBlob RefKind = iota
	// RefLayer is a blob the manifest names but that may be absent (a
	// sparse image: a mirror holding some platforms' layers). When the
	// repository links it, PutManifest claims it (it lives while the
	// manifest does). When the repository linked it until garbage
	// collection pruned it, PutManifest refuses the manifest, as for a
	// missing RefBlob: storing it would acknowledge an image that cannot
	// be pulled.
	RefLayer
	// RefManifest is a manifest an index lists.
	RefManifest
	// RefExternal is a blob the registry never needs to hold: carried
	// inline (data), or at other locations (urls, non-distributable
	// layers). Claimed like RefLayer when present; never refused.
	RefExternal
)

// Reference is one digest a manifest points to.
type Reference struct {
	Digest digest.Digest
	Kind   RefKind
	// Present is set by WalkManifests (PutManifest ignores it): whether
	// the blob was readable from the repository when the manifest was
	// stored. Always true for RefBlob. A present blob whose content is
	// gone is damage; an absent one was deliberately sparse.
	Present bool
}

// ArrivalLookup answers sign.VerifyOptions.ArrivedAt from s's signature
// arrivals (nil for no store). A lookup that fails answers "not known":
// the key's window is then judged at the time of verification, which
// refuses rather than admits.
func ArrivalLookup(s Store) func(ctx context.Context, key string) (time.Time, bool) {
	if s == nil {
		return nil
	}
	return func(ctx context.Context, key string) (time.Time, bool) {
		got, err := s.SignatureArrivals(ctx, []string{key})
		if err != nil {
			return time.Time{}, false
		}
		at, ok := got[key]
		return at, ok
	}
}

// Manifest is a stored manifest with what the registry needs to serve it,
// list it as a referrer and collect garbage around it.
type Manifest struct {
	Digest    digest.Digest
	MediaType string
	// ArtifactType is what the referrers API reports: the manifest's
	// artifactType, or for an image manifest without one its config's
	// media type.
	ArtifactType string
	Subject      digest.Digest // empty when the manifest has no subject
	Annotations  map[string]string
	Content      []byte
	PushedAt     time.Time
	// References is filled by PutManifest's caller and by WalkManifests;
	// Manifest() leaves it empty.
	References []Reference
	// Signatures are the arrival keys (sign.ArrivalKey) of the signatures
	// and attestations the manifest carries, filled by PutManifest's
	// caller: PutManifest records when each was first stored, the time a
	// verifier may judge a signing key's validity window at.
	Signatures []string
}

// Descriptor is one entry of a referrers list.
type Descriptor struct {
	MediaType    string
	Digest       digest.Digest
	Size         int64
	ArtifactType string
	Annotations  map[string]string
}

// Upload is an unfinished blob upload session.
type Upload struct {
	ID         string
	Repository string
	// Account is who started it, for UploadLimit.PerAccount.
	Account   string
	StartedAt time.Time
}

// BlobRecord is what the store knows about one blob, for fsck.
type BlobRecord struct {
	Digest digest.Digest
	// Size is the size of the verified content, or -1 while the blob is
	// only claimed (TouchBlob) and no verified write has linked it yet.
	Size       int64
	LastUsed   time.Time
	Linked     bool // readable from at least one repository
	Referenced bool // named by at least one manifest
}

// GCPolicy says which manifests CollectManifests may delete.
type GCPolicy struct {
	// Untagged deletes manifests that no tag reaches. Without it only
	// referrers whose subject is gone are deleted.
	Untagged bool
	// Before protects everything pushed or tagged at or after it: a push in
	// flight (blobs up, manifest not yet, or children before their index)
	// must survive.
	Before time.Time
}

// Collected is what CollectManifests deleted from one repository.
type Collected struct {
	Manifests []Manifest // Digest and MediaType set
	Tags      []string   // fallback-schema tags whose subject is gone
}

// Artifact is a top-level manifest of a repository, as listings show it.
type Artifact struct {
	Digest       digest.Digest
	MediaType    string
	ArtifactType string
	Size         int64
	PushedAt     time.Time
	Tags         []string // in lexical order
}

// Store is the metadata store. Implementations are safe for concurrent use.
type Store interface {
	// Ping checks the database answers.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error

	// Repositories lists repositories holding at least one manifest, in
	// lexical order, after last, at most n (n < 0: all).
	Repositories(ctx context.Context, last string, n int) ([]string, error)

	// TouchBlob records that blob d is about to be written, protecting it
	// from garbage collection for the grace period. Call it before the
	// content is committed to the blob store. It takes no size: the write
	// may still fail, and a claim must never change what is recorded about
	// a blob other repositories already hold (only its last use moves).
	TouchBlob(ctx context.Context, d digest.Digest) error
	// LinkBlob makes blob d readable from repo, creating repo if needed.
	// size is the size of content verified against d; it is recorded.
	LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error
	// LinkUploadedBlob links blob d (of verified size) into the upload's
	// repository and ends the upload session, in one transaction.
	LinkUploadedBlob(ctx context.Context, uploadID string, d digest.Digest, size int64) error
	// SetBlobSize corrects the recorded size of blob d to the size of its
	// verified content (fsck --repair), or returns ErrBlobUnknown when the
	// store has no record of it.
	SetBlobSize(ctx context.Context, d digest.Digest, size int64) error
	// BlobSize returns the size of blob d if repo may read it, else
	// ErrBlobUnknown.
	BlobSize(ctx context.Context, repo string, d digest.Digest) (int64, error)
	// UnlinkBlob removes repo's access to blob d, or returns ErrBlobUnknown.
	UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error
	// MountBlob links blob d into repo if from may read it, returning its
	// size, else ErrBlobUnknown.
	MountBlob(ctx context.Context, from, repo string, d digest.Digest) (int64, error)
	// BlobRepositories lists up to n repositories that may read blob d.
	BlobRepositories(ctx context.Context, d digest.Digest, n int) ([]string, error)

	// PutManifest stores m in repo (creating repo if needed) and points
	// tags at it, in one transaction. References of kind RefBlob must be
	// readable from repo, and RefLayer ones must not be blobs repo held
	// until garbage collection pruned them (see RefLayer), else nothing
	// changes and a *MissingBlobsError is returned. Every blob it names
	// is claimed in the same transaction: garbage collection cannot take
	// a blob between this check and the manifest being stored.
	PutManifest(ctx context.Context, repo string, m *Manifest, tags []string) error
	// SignatureArrivals returns when each of keys (Manifest.Signatures)
	// was first stored, in any repository; keys never stored are absent.
	// The time stays when the manifests carrying a key are deleted, so a
	// signature pushed again later keeps its first arrival.
	SignatureArrivals(ctx context.Context, keys []string) (map[string]time.Time, error)
	// Manifest returns the manifest d of repo without its References, or
	// ErrManifestUnknown.
	Manifest(ctx context.Context, repo string, d digest.Digest) (*Manifest, error)
	// ManifestRepositories lists up to n repositories holding manifest d,
	// in lexical order.
	ManifestRepositories(ctx context.Context, d digest.Digest, n int) ([]string, error)
	// Artifacts lists repo's artifacts: its manifests that have no subject
	// and that no index of the repository lists, newest push first,
	// skipping offset and returning at most n, with the total count.
	Artifacts(ctx context.Context, repo string, offset, n int) ([]Artifact, int, error)
	// ManifestTags lists the tags of repo that point at manifest d, in
	// lexical order.
	ManifestTags(ctx context.Context, repo string, d digest.Digest) ([]string, error)
	// Tag resolves a tag, or returns ErrTagUnknown.
	Tag(ctx context.Context, repo, tag string) (digest.Digest, error)
	// DeleteManifest deletes manifest d and every tag pointing at it,
	// returning those tags, or ErrManifestUnknown.
	DeleteManifest(ctx context.Context, repo string, d digest.Digest) ([]string, error)
	// DeleteRepository deletes every manifest of repo with its tags and
	// every blob link of repo, in one transaction, recording a
	// ManifestDeleted change per manifest (with the manifest's tags), and
	// returns those changes in digest order, or ErrRepositoryUnknown. The repository itself goes too
	// unless an upload session is open in it (PruneRepositories takes it
	// once its sessions have expired). Blobs stay until garbage
	// collection finds nothing else links them.
	DeleteRepository(ctx context.Context, repo string) ([]event.Event, error)
	// DeleteTag deletes a tag and returns the manifest it pointed at, or
	// ErrTagUnknown. The manifest stays.
	DeleteTag(ctx context.Context, repo, tag string) (digest.Digest, error)
	// Tags lists repo's tags in lexical order after last, at most n
	// (n < 0: all), or ErrRepositoryUnknown.
	Tags(ctx context.Context, repo, last string, n int) ([]string, error)
	// Referrers lists the manifests in repo whose subject is d, filtered by
	// artifactType unless it is empty, ordered by digest.
	Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string) ([]Descriptor, error)

	// CreateUpload records a new upload session, creating its repository
	// if needed, unless the repository or u.Account already has as many
	// sessions as limit allows (a *TooManyUploadsError).
	CreateUpload(ctx context.Context, u Upload, limit UploadLimit) error
	// Upload returns a session, or ErrUploadUnknown.
	Upload(ctx context.Context, id string) (Upload, error)
	// DeleteUpload forgets a session; forgetting an unknown one is not an
	// error.
	DeleteUpload(ctx context.Context, id string) error
	// Uploads lists every session.
	Uploads(ctx context.Context) ([]Upload, error)

	// RepositoryNames lists every repository, also empty ones, for the
	// garbage collector.
	RepositoryNames(ctx context.Context) ([]string, error)
	// CollectManifests deletes the manifests of repo that policy lets go
	// (see Live), with their tags, in one transaction.
	CollectManifests(ctx context.Context, repo string, policy GCPolicy) (Collected, error)
	// PruneBlobLinks removes links made before the time given that no
	// manifest of the linking repository references, returning how many.
	// It remembers each pruned link until ForgetPrunedLinks, so that
	// PutManifest can refuse a manifest naming it, and PruneRepositories
	// keeps a repository while it remembers one of its links.
	PruneBlobLinks(ctx context.Context, before time.Time) (int64, error)
	// ForgetPrunedLinks forgets links pruned before the time given,
	// returning how many.
	ForgetPrunedLinks(ctx context.Context, before time.Time) (int64, error)
	// SweepBlobs finds blobs last used before the time given that no
	// repository links and no manifest references. For each it calls
	// remove inside a transaction that holds off TouchBlob, and forgets the
	// blob if remove succeeds. It returns the digests removed and the
	// first error of remove, after trying every candidate.
	SweepBlobs(ctx context.Context, before time.Time, remove func(digest.Digest) error) ([]digest.Digest, error)
	// RemoveUnrecordedBlob calls remove inside a transaction that holds
	// off TouchBlob, if the store has no record of blob d. It reports
	// whether remove ran.
	RemoveUnrecordedBlob(ctx context.Context, d digest.Digest, remove func() error) (bool, error)
	// PruneRepositories deletes repositories with no manifests, blob links,
	// remembered pruned links or uploads, created before the time given,
	// returning their names.
	PruneRepositories(ctx context.Context, before time.Time) ([]string, error)

	// WalkManifests calls fn for every manifest of every repository, with
	// Content and References filled.
	WalkManifests(ctx context.Context, fn func(repo string, m *Manifest) error) error
	// WalkBlobs calls fn for every blob the store knows.
	WalkBlobs(ctx context.Context, fn func(BlobRecord) error) error
	// CheckIntegrity runs the database's own consistency checks and
	// returns the problems found.
	CheckIntegrity(ctx context.Context) ([]string, error)

	// Events returns up to n of the changes recorded after seq, oldest
	// first, with Seq set. PutManifest, DeleteManifest, DeleteTag and
	// CollectManifests record their changes (manifest pushed, manifest
	// deleted, tag deleted) in their own transaction, with the actor that
	// event.WithActor put in their context: an outbox that whoever acts
	// on changes reads, and forgets with DeleteEvents once acted on.
	Events(ctx context.Context, after int64, n int) ([]event.Event, error)
	// DeleteEvents forgets the recorded changes up to and including seq.
	DeleteEvents(ctx context.Context, through int64) error
}
