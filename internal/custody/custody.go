// Package custody keeps projects' signing keys in the server: generated
// here, private halves sealed at rest under a master key (envelope
// encryption; see Master) and never handed out, public halves published
// with validity windows, rotated by command or on a schedule, backed up
// encrypted to a passphrase and restored. It also holds the stage rules
// ("sign with key K when the scan passes rule R") and the approvals the
// stages gave, so that an approval withdrawn later is on record.
//
// Its records live in a Store: meta.db's tables as the "custody"
// component (OpenSQLite), or the shared PostgreSQL database's
// (internal/custody/postgres), so every replica holds the same keys.
package custody

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/keys"
)

var (
	// ErrNotFound means no such key, rule or approval.
	ErrNotFound = errors.New("not found")
	// ErrExists means the purpose already has a key (rotate it instead).
	ErrExists = errors.New("already exists")
	// ErrInvalid means a request berth cannot carry out as given.
	ErrInvalid = errors.New("invalid")
	// ErrUnmet means a stage's conditions do not hold for the artifact
	// someone asked to approve: a required stage has not approved it, or
	// its scan fails the rule.
	ErrUnmet = errors.New("the stage's conditions are not met")
)

// Key is a stored key's public record: what the API publishes.
type Key struct {
	ID        string `json:"id"`
	ProjectID string `json:"-"`
	Project   string `json:"project"`
	Purpose   string `json:"purpose"`
	Algorithm string `json:"algorithm"`
	PublicKey string `json:"public_key"`
	// KeyHint is sigstore's key id: base64 SHA-256 of the public key.
	KeyHint   string    `json:"key_id"`
	CreatedAt time.Time `json:"created_at"`
	// NotBefore and NotAfter bound when verifiers should accept the key
	// (a zero NotAfter: no end yet).
	NotBefore time.Time  `json:"not_before"`
	NotAfter  *time.Time `json:"not_after,omitempty"`
	// Signing is whether the server signs with it; RetiredAt is when it
	// stopped.
	Signing     bool       `json:"signing"`
	RetiredAt   *time.Time `json:"retired_at,omitempty"`
	RotateEvery Duration   `json:"rotate_every,omitempty"`
	Overlap     Duration   `json:"overlap"`
	Predecessor string     `json:"predecessor,omitempty"`
}

// Duration is a time.Duration written as Go writes it ("720h0m0s").
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// DefaultOverlap is how long a rotated-out key stays valid for verifiers
// unless the key says otherwise: time to re-sign what must stay deployable.
const DefaultOverlap = 30 * 24 * time.Hour

// Options wire the service.
type Options struct {
	// Store holds the records; the Service closes it.
	Store  Store
	Master Master
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Service is the key custody of one server.
type Service struct {
	store  Store
	master Master
	now    func() time.Time
	// beforeCommit lets tests interrupt a rotation inside its
	// transaction.
	beforeCommit func(what string) error
}

// checkValue is sealed under the master key when the store is first
// opened, so that a server (or replica) started with another master key
// says so at once.
var checkValue = []byte("berth key custody")

// Open opens the custody records and checks the master key against them.
// The store is the Service's from then on, closed with it (or at once
// when Open fails).
func Open(ctx context.Context, opts Options) (*Service, error) {
	if opts.Master == nil {
		if opts.Store != nil {
			opts.Store.Close()
		}
		return nil, fmt.Errorf("%w: none configured", ErrMasterKey)
	}
	s := &Service{store: opts.Store, master: opts.Master, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.checkMaster(ctx); err != nil {
		opts.Store.Close()
		return nil, err
	}
	return s, nil
}

// checkMaster seals the check value when the store has none and makes
// sure the master key opens the stored one (which another replica may
// have stored first).
func (s *Service) checkMaster(ctx context.Context) error {
	stored, err := s.store.CheckValue(ctx)
	if errors.Is(err, ErrNotFound) {
		var fresh []byte
		if fresh, err = s.master.Seal(checkValue, nil); err != nil {
			return fmt.Errorf("%w: seal the check value: %v", ErrMasterKey, err)
		}
		stored, err = s.store.InitCheckValue(ctx, fresh)
	}
	if err != nil {
		return fmt.Errorf("read the master key check value: %w", err)
	}
	if _, err := s.master.Open(stored, nil); err != nil {
		return fmt.Errorf("%w: %s is not the master key the stored signing keys are sealed under", ErrMasterKey, s.master.Describe())
	}
	return nil
}

// Close closes the store (not the master key, which its opener owns).
func (s *Service) Close() error { return s.store.Close() }

var purposePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// NewKey asks for a key.
type NewKey struct {
	ProjectID, Project, Purpose string
	// Algorithm is one of keys.Kinds ("" is ecdsa-p256).
	Algorithm   string
	RotateEvery time.Duration
	Overlap     time.Duration
}

func newID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "key-" + hex.EncodeToString(b)
}

// prepare generates and seals a key; nothing is stored yet.
func (s *Service) prepare(n NewKey, priv crypto.Signer, now time.Time) (SealedKey, error) {
	if !purposePattern.MatchString(n.Purpose) {
		return SealedKey{}, fmt.Errorf("%w: purpose %q: lower-case letters, digits, '.', '_' and '-', at most 64", ErrInvalid, n.Purpose)
	}
	if n.RotateEvery < 0 || (n.RotateEvery > 0 && n.RotateEvery < time.Hour) {
		return SealedKey{}, fmt.Errorf("%w: rotate_every must be at least an hour", ErrInvalid)
	}
	if n.Overlap < 0 {
		return SealedKey{}, fmt.Errorf("%w: overlap must not be negative", ErrInvalid)
	}
	if n.Overlap == 0 {
		n.Overlap = DefaultOverlap
	}
	var err error
	if priv == nil {
		if priv, err = keys.GenerateKind(n.Algorithm); err != nil {
			return SealedKey{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	pubPEM, err := keys.EncodePublic(priv.Public())
	if err != nil {
		return SealedKey{}, err
	}
	hint, err := keys.ID(priv.Public())
	if err != nil {
		return SealedKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return SealedKey{}, fmt.Errorf("encode private key: %w", err)
	}
	defer clear(der)
	k := Key{ID: newID(), ProjectID: n.ProjectID, Project: n.Project, Purpose: n.Purpose, Algorithm: keys.Kind(priv.Public()),
		PublicKey: string(pubPEM), KeyHint: hint, CreatedAt: now, NotBefore: now, Signing: true,
		RotateEvery: Duration(n.RotateEvery), Overlap: Duration(n.Overlap)}
	w, c, err := seal(s.master, der, []byte(k.ID))
	if err != nil {
		return SealedKey{}, err
	}
	return SealedKey{Key: k, WrappedDEK: w, Ciphertext: c}, nil
}

// Create generates a key for a purpose that has none.
func (s *Service) Create(ctx context.Context, n NewKey) (Key, error) {
	k, err := s.prepare(n, nil, s.now().UTC())
	if err != nil {
		return Key{}, err
	}
	if err := s.store.Update(ctx, "create key", func(tx Tx) error { return tx.InsertKey(ctx, k) }); err != nil {
		return Key{}, err
	}
	return k.Key, nil
}

// List returns the project's keys, every version, oldest first.
func (s *Service) List(ctx context.Context, projectID string) ([]Key, error) {
	return s.store.Keys(ctx, projectID)
}

// Current returns the key that signs for the purpose.
func (s *Service) Current(ctx context.Context, projectID, purpose string) (Key, error) {
	k, err := s.current(ctx, projectID, purpose)
	return k.Key, err
}

func (s *Service) current(ctx context.Context, projectID, purpose string) (SealedKey, error) {
	k, err := s.store.Current(ctx, projectID, purpose)
	if errors.Is(err, ErrNotFound) {
		return SealedKey{}, fmt.Errorf("%w: no %s key", ErrNotFound, purpose)
	}
	return k, err
}

// Signer opens the current key of the purpose for signing. The private
// key exists in the clear only in this process's memory.
func (s *Service) Signer(ctx context.Context, projectID, purpose string) (*sign.Key, Key, error) {
	k, err := s.current(ctx, projectID, purpose)
	if err != nil {
		return nil, Key{}, err
	}
	priv, err := s.open(k.ID, k.WrappedDEK, k.Ciphertext)
	if err != nil {
		return nil, Key{}, fmt.Errorf("key %s: %w", k.ID, err)
	}
	sk, err := sign.NewKey(priv)
	return sk, k.Key, err
}

func (s *Service) open(id string, wrapped, ciphertext []byte) (crypto.Signer, error) {
	der, err := unseal(s.master, wrapped, ciphertext, []byte(id))
	if err != nil {
		return nil, err
	}
	defer clear(der)
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("stored private key: %w", err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("stored private key is a %T", priv)
	}
	return signer, nil
}

// Rotate makes a successor of the purpose's current key and switches
// signing to it in one transaction: the old key stops signing now and
// stays valid for verifiers until now + overlap (its own overlap when
// zero). An interrupted rotation leaves the old key signing.
func (s *Service) Rotate(ctx context.Context, projectID, purpose string, overlap time.Duration) (Key, Key, error) {
	old, err := s.Current(ctx, projectID, purpose)
	if err != nil {
		return Key{}, Key{}, err
	}
	if overlap < 0 {
		return Key{}, Key{}, fmt.Errorf("%w: overlap must not be negative", ErrInvalid)
	}
	if overlap == 0 {
		overlap = time.Duration(old.Overlap)
	}
	now := s.now().UTC()
	next, err := s.prepare(NewKey{ProjectID: projectID, Project: old.Project, Purpose: purpose, Algorithm: old.Algorithm,
		RotateEvery: time.Duration(old.RotateEvery), Overlap: time.Duration(old.Overlap)}, nil, now)
	if err != nil {
		return Key{}, Key{}, err
	}
	next.Predecessor = old.ID
	end := now.Add(overlap)
	err = s.store.Update(ctx, "rotate key", func(tx Tx) error {
		// Only the key read above may be retired: a rotation that raced
		// this one (through any replica) has already replaced it.
		retired, err := tx.RetireKey(ctx, old.ID, now, end)
		if err != nil {
			return err
		}
		if !retired {
			return fmt.Errorf("%w: the %s key was rotated meanwhile", ErrExists, purpose)
		}
		if err := tx.InsertKey(ctx, next); err != nil {
			return err
		}
		if s.beforeCommit != nil {
			return s.beforeCommit("rotate")
		}
		return nil
	})
	if err != nil {
		return Key{}, Key{}, err
	}
	old.Signing, old.RetiredAt, old.NotAfter = false, &now, &end
	return old, next.Key, nil
}

// Due lists the keys whose scheduled rotation is due at now.
func (s *Service) Due(ctx context.Context) ([]Key, error) {
	return s.store.Due(ctx, s.now())
}

// Trust returns the purpose's keys as a verifier's trust set: every key
// with its window, any one valid key sufficing.
func (s *Service) Trust(ctx context.Context, projectID, purpose string) (sign.Trust, error) {
	all, err := s.List(ctx, projectID)
	if err != nil {
		return sign.Trust{}, err
	}
	var t sign.Trust
	for _, k := range all {
		if k.Purpose != purpose {
			continue
		}
		pub, err := keys.ParsePublic([]byte(k.PublicKey))
		if err != nil {
			return sign.Trust{}, err
		}
		var na time.Time
		if k.NotAfter != nil {
			na = *k.NotAfter
		}
		tk, err := sign.NewTrustedKey(k.ID, pub, k.NotBefore, na)
		if err != nil {
			return sign.Trust{}, err
		}
		t.Keys = append(t.Keys, tk)
	}
	if len(t.Keys) == 0 {
		return sign.Trust{}, fmt.Errorf("%w: no %s key", ErrNotFound, purpose)
	}
	t.Require = 1
	return t, nil
}
