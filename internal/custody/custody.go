// Package custody keeps projects' signing keys in the server: generated
// here, private halves sealed at rest under a master key (envelope
// encryption; see Master) and never handed out, public halves published
// with validity windows, rotated by command or on a schedule, backed up
// encrypted to a passphrase and restored. It also holds the stage rules
// ("sign with key K when the scan passes rule R") and the approvals the
// stages gave, so that an approval withdrawn later is on record.
//
// Tables live in meta.db as the "custody" component.
package custody

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	sqlitedb "berth.dev/berth/internal/audit/sqlite"
	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/keys"
)

var migrations = []string{`
CREATE TABLE custody_check (
	id     INTEGER PRIMARY KEY CHECK (id = 1),
	sealed BLOB NOT NULL
);

CREATE TABLE signing_keys (
	id           TEXT PRIMARY KEY,
	project_id   TEXT NOT NULL,
	project      TEXT NOT NULL,
	purpose      TEXT NOT NULL,
	algorithm    TEXT NOT NULL,
	public_pem   TEXT NOT NULL,
	key_hint     TEXT NOT NULL,
	wrapped_dek  BLOB NOT NULL,
	ciphertext   BLOB NOT NULL,
	created_at   INTEGER NOT NULL,
	not_before   INTEGER NOT NULL,
	not_after    INTEGER NOT NULL,
	retired_at   INTEGER NOT NULL,
	rotate_every INTEGER NOT NULL,
	overlap      INTEGER NOT NULL,
	predecessor  TEXT NOT NULL
);
CREATE INDEX signing_keys_by_project ON signing_keys(project_id, purpose, created_at);
-- At most one key of a purpose signs; rotation swaps it in one
-- transaction, so there is never none either.
CREATE UNIQUE INDEX signing_keys_current ON signing_keys(project_id, purpose) WHERE retired_at = 0;

CREATE TABLE stage_rules (
	project_id     TEXT NOT NULL,
	project        TEXT NOT NULL,
	stage          TEXT NOT NULL,
	key_purpose    TEXT NOT NULL,
	fail_on        TEXT NOT NULL,
	ignore_unfixed INTEGER NOT NULL,
	attest         INTEGER NOT NULL,
	PRIMARY KEY (project_id, stage)
);

CREATE TABLE stage_approvals (
	digest     TEXT NOT NULL,
	repository TEXT NOT NULL,
	stage      TEXT NOT NULL,
	project_id TEXT NOT NULL,
	key_id     TEXT NOT NULL,
	state      TEXT NOT NULL,
	at         INTEGER NOT NULL,
	reason     TEXT NOT NULL,
	PRIMARY KEY (digest, repository, stage)
);
CREATE INDEX stage_approvals_by_project ON stage_approvals(project_id);
`}

var (
	// ErrNotFound means no such key, rule or approval.
	ErrNotFound = errors.New("not found")
	// ErrExists means the purpose already has a key (rotate it instead).
	ErrExists = errors.New("already exists")
	// ErrInvalid means a request berth cannot carry out as given.
	ErrInvalid = errors.New("invalid")
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
	// Path is meta.db.
	Path   string
	Master Master
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Service is the key custody of one server.
type Service struct {
	db     *sqlitedb.DB
	master Master
	now    func() time.Time
	// beforeCommit lets tests interrupt a rotation inside its
	// transaction.
	beforeCommit func(what string) error
}

// checkValue is sealed under the master key when the first key is stored,
// so that a server started with another master key says so at once.
var checkValue = []byte("berth key custody")

// Open opens the custody tables and checks the master key against them.
func Open(ctx context.Context, opts Options) (*Service, error) {
	if opts.Master == nil {
		return nil, fmt.Errorf("%w: none configured", ErrMasterKey)
	}
	db, err := sqlitedb.OpenDB(ctx, opts.Path, "custody", migrations)
	if err != nil {
		return nil, err
	}
	s := &Service{db: db, master: opts.Master, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	var sealed []byte
	err = db.R.QueryRowContext(ctx, "SELECT sealed FROM custody_check WHERE id = 1").Scan(&sealed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if sealed, err = opts.Master.Seal(checkValue, nil); err == nil {
			_, err = db.W.ExecContext(ctx, "INSERT INTO custody_check (id, sealed) VALUES (1, ?)", sealed)
		}
	case err == nil:
		if _, oerr := opts.Master.Open(sealed, nil); oerr != nil {
			err = fmt.Errorf("%w: %s is not the master key this data directory's signing keys are sealed under", ErrMasterKey, opts.Master.Describe())
		}
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database (not the master key, which its opener owns).
func (s *Service) Close() error { return s.db.Close() }

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

// sealed is a generated key ready to insert.
type sealed struct {
	Key
	wrapped, ciphertext []byte
}

// prepare generates and seals a key; nothing is stored yet.
func (s *Service) prepare(n NewKey, priv crypto.Signer, now time.Time) (sealed, error) {
	if !purposePattern.MatchString(n.Purpose) {
		return sealed{}, fmt.Errorf("%w: purpose %q: lower-case letters, digits, '.', '_' and '-', at most 64", ErrInvalid, n.Purpose)
	}
	if n.RotateEvery < 0 || (n.RotateEvery > 0 && n.RotateEvery < time.Hour) {
		return sealed{}, fmt.Errorf("%w: rotate_every must be at least an hour", ErrInvalid)
	}
	if n.Overlap < 0 {
		return sealed{}, fmt.Errorf("%w: overlap must not be negative", ErrInvalid)
	}
	if n.Overlap == 0 {
		n.Overlap = DefaultOverlap
	}
	var err error
	if priv == nil {
		if priv, err = keys.GenerateKind(n.Algorithm); err != nil {
			return sealed{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	pubPEM, err := keys.EncodePublic(priv.Public())
	if err != nil {
		return sealed{}, err
	}
	hint, err := keys.ID(priv.Public())
	if err != nil {
		return sealed{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return sealed{}, fmt.Errorf("encode private key: %w", err)
	}
	defer clear(der)
	k := Key{ID: newID(), ProjectID: n.ProjectID, Project: n.Project, Purpose: n.Purpose, Algorithm: keys.Kind(priv.Public()),
		PublicKey: string(pubPEM), KeyHint: hint, CreatedAt: now, NotBefore: now, Signing: true,
		RotateEvery: Duration(n.RotateEvery), Overlap: Duration(n.Overlap)}
	w, c, err := seal(s.master, der, []byte(k.ID))
	if err != nil {
		return sealed{}, err
	}
	return sealed{Key: k, wrapped: w, ciphertext: c}, nil
}

func nanos(t *time.Time) int64 {
	if t == nil || t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) *time.Time {
	if n == 0 {
		return nil
	}
	t := time.Unix(0, n).UTC()
	return &t
}

func insertKey(ctx context.Context, tx *sql.Tx, k sealed) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (id, project_id, project, purpose, algorithm, public_pem, key_hint,
		wrapped_dek, ciphertext, created_at, not_before, not_after, retired_at, rotate_every, overlap, predecessor)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.ProjectID, k.Project, k.Purpose, k.Algorithm, k.PublicKey, k.KeyHint, k.wrapped, k.ciphertext,
		k.CreatedAt.UnixNano(), k.NotBefore.UnixNano(), nanos(k.NotAfter), nanos(k.RetiredAt),
		int64(k.RotateEvery), int64(k.Overlap), k.Predecessor)
	if err != nil && isUnique(err) {
		return fmt.Errorf("%w: project %s already has a %s key; rotate it instead", ErrExists, k.Project, k.Purpose)
	}
	return err
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// Create generates a key for a purpose that has none.
func (s *Service) Create(ctx context.Context, n NewKey) (Key, error) {
	k, err := s.prepare(n, nil, s.now().UTC())
	if err != nil {
		return Key{}, err
	}
	err = s.db.InTx(ctx, "create key", func(tx *sql.Tx) error { return insertKey(ctx, tx, k) })
	return k.Key, err
}

const keyColumns = `id, project_id, project, purpose, algorithm, public_pem, key_hint, created_at, not_before, not_after,
	retired_at, rotate_every, overlap, predecessor`

type scanner interface{ Scan(...any) error }

func scanKey(row scanner, extra ...any) (Key, error) {
	var k Key
	var created, nb, na, retired, every, overlap int64
	err := row.Scan(append([]any{&k.ID, &k.ProjectID, &k.Project, &k.Purpose, &k.Algorithm, &k.PublicKey, &k.KeyHint,
		&created, &nb, &na, &retired, &every, &overlap, &k.Predecessor}, extra...)...)
	if err != nil {
		return k, err
	}
	k.CreatedAt, k.NotBefore = *fromNanos(created), *fromNanos(nb)
	k.NotAfter, k.RetiredAt = fromNanos(na), fromNanos(retired)
	k.Signing = retired == 0
	k.RotateEvery, k.Overlap = Duration(every), Duration(overlap)
	return k, nil
}

// List returns the project's keys, every version, oldest first.
func (s *Service) List(ctx context.Context, projectID string) ([]Key, error) {
	rows, err := s.db.R.QueryContext(ctx, "SELECT "+keyColumns+" FROM signing_keys WHERE project_id = ? ORDER BY purpose, created_at, id", projectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Key{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// Current returns the key that signs for the purpose.
func (s *Service) Current(ctx context.Context, projectID, purpose string) (Key, error) {
	k, err := scanKey(s.db.R.QueryRowContext(ctx, "SELECT "+keyColumns+" FROM signing_keys WHERE project_id = ? AND purpose = ? AND retired_at = 0",
		projectID, purpose))
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, fmt.Errorf("%w: no %s key", ErrNotFound, purpose)
	}
	return k, err
}

// Signer opens the current key of the purpose for signing. The private
// key exists in the clear only in this process's memory.
func (s *Service) Signer(ctx context.Context, projectID, purpose string) (*sign.Key, Key, error) {
	var wrapped, ciphertext []byte
	k, err := scanKey(s.db.R.QueryRowContext(ctx, "SELECT "+keyColumns+", wrapped_dek, ciphertext FROM signing_keys WHERE project_id = ? AND purpose = ? AND retired_at = 0",
		projectID, purpose), &wrapped, &ciphertext)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, Key{}, fmt.Errorf("%w: no %s key", ErrNotFound, purpose)
	}
	if err != nil {
		return nil, Key{}, err
	}
	priv, err := s.open(k.ID, wrapped, ciphertext)
	if err != nil {
		return nil, Key{}, fmt.Errorf("key %s: %w", k.ID, err)
	}
	sk, err := sign.NewKey(priv)
	return sk, k, err
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
	err = s.db.InTx(ctx, "rotate key", func(tx *sql.Tx) error {
		// Only the key read above may be retired: a rotation that raced
		// this one has already replaced it.
		res, err := tx.ExecContext(ctx, "UPDATE signing_keys SET retired_at = ?, not_after = ? WHERE id = ? AND retired_at = 0",
			now.UnixNano(), end.UnixNano(), old.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("%w: the %s key was rotated meanwhile", ErrExists, purpose)
		}
		if err := insertKey(ctx, tx, next); err != nil {
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
	rows, err := s.db.R.QueryContext(ctx, "SELECT "+keyColumns+" FROM signing_keys WHERE retired_at = 0 AND rotate_every > 0 AND not_before + rotate_every <= ?",
		s.now().UnixNano())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
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
