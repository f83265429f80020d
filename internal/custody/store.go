package custody

import (
	"context"
	"time"

	"github.com/opencontainers/go-digest"
)

// Store is where custody keeps its records: the SQLite tables of meta.db
// (OpenSQLite) or the shared PostgreSQL database's (internal/custody/
// postgres), so that every replica of a scale-out deployment holds the
// same keys, rules and approvals. A store only ever sees private keys
// sealed under the master key (SealedKey): sealing and opening are the
// Service's. Keys, rules and approvals a store does not find are
// ErrNotFound.
type Store interface {
	// CheckValue returns the value sealed under the master key when the
	// first server opened the store.
	CheckValue(ctx context.Context) ([]byte, error)
	// InitCheckValue stores sealed unless a check value is already
	// stored (by another replica starting at the same time) and returns
	// the stored one.
	InitCheckValue(ctx context.Context, sealed []byte) ([]byte, error)
	// Keys returns the project's keys, every version, by purpose then
	// creation.
	Keys(ctx context.Context, projectID string) ([]Key, error)
	// Current returns the key that signs for the purpose.
	Current(ctx context.Context, projectID, purpose string) (SealedKey, error)
	// Due returns the signing keys whose scheduled rotation is due at now.
	Due(ctx context.Context, now time.Time) ([]Key, error)
	// AllKeys returns every key of every project with its sealed private
	// half, by project name, purpose and creation (for backups).
	AllKeys(ctx context.Context) ([]SealedKey, error)
	// Rule returns the project's rule for the stage.
	Rule(ctx context.Context, projectID, stage string) (Rule, error)
	// AllRules returns every project's rules, by project name and stage.
	AllRules(ctx context.Context) ([]ProjectRule, error)
	// Approvals returns the stages' word on an artifact in a repository,
	// by stage.
	Approvals(ctx context.Context, repo string, d digest.Digest) ([]Approval, error)
	// Update runs fn in one write transaction: all of it is committed, or
	// nothing when fn (or the commit) fails. Write transactions run one
	// at a time, whichever process makes them, so that what fn reads
	// through the Tx holds until it commits. fn may be run again when the
	// database aborts the transaction to resolve a conflict.
	Update(ctx context.Context, what string, fn func(Tx) error) error
	Close() error
}

// Tx is a Store's write transaction.
type Tx interface {
	// InsertKey stores a key; ErrExists when its purpose already has a
	// signing key or its id is taken (the transaction stays usable).
	InsertKey(ctx context.Context, k SealedKey) error
	// RetireKey stops the signing key id signing at at, valid for
	// verifiers until notAfter; false when it is not (or no longer) a
	// signing key.
	RetireKey(ctx context.Context, id string, at, notAfter time.Time) (bool, error)
	// CountKeys counts every project's keys.
	CountKeys(ctx context.Context) (int, error)
	// DeleteProject deletes the project's keys and rules.
	DeleteProject(ctx context.Context, projectID string) error
	// DeleteKey deletes the key id, whichever project holds it.
	DeleteKey(ctx context.Context, id string) error
	// PutRule stores the project's rule for its stage, replacing any.
	PutRule(ctx context.Context, projectID, project string, r Rule) error
	// DeleteRule deletes the project's rule for stage; false when there
	// was none.
	DeleteRule(ctx context.Context, projectID, stage string) (bool, error)
	// PutApproval stores a stage's word on an artifact, replacing any.
	PutApproval(ctx context.Context, projectID string, a Approval) error
}

// SealedKey is a key's record with its private half as stored: a data key
// sealed under the master key (WrappedDEK) and the PKCS #8 private key
// sealed under the data key (Ciphertext), both bound to the key's id.
type SealedKey struct {
	Key
	WrappedDEK, Ciphertext []byte
}

// ProjectRule is a stage rule with its project's name.
type ProjectRule struct {
	ProjectID string
	Project   string
	Rule
}

// Nanos is t as a store writes it: Unix nanoseconds, 0 for none.
func Nanos(t *time.Time) int64 {
	if t == nil || t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// FromNanos is the time a store read as Nanos wrote it.
func FromNanos(n int64) *time.Time {
	if n == 0 {
		return nil
	}
	t := time.Unix(0, n).UTC()
	return &t
}

// KeyFromRow fills in a key's times from the columns a store keeps
// (Unix nanoseconds; 0 for no end and not retired: a key signs until
// retired).
func KeyFromRow(k *Key, created, notBefore, notAfter, retired, rotateEvery, overlap int64) {
	k.CreatedAt, k.NotBefore = time.Unix(0, created).UTC(), time.Unix(0, notBefore).UTC()
	k.NotAfter, k.RetiredAt = FromNanos(notAfter), FromNanos(retired)
	k.Signing = retired == 0
	k.RotateEvery, k.Overlap = Duration(rotateEvery), Duration(overlap)
}
