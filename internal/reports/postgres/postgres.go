// Package postgres is the reports.Store of a scale-out deployment: scan
// states, reports and the lookup-key index in the shared PostgreSQL
// database, so a scan stored by one replica is read, listed and
// re-matched by any. Reports are stored as reports.Codec writes them (as
// the SQLite store does): the inventory and the rest in two BYTEA
// columns, the findings' identities beside them.
//
// Lookup keys and finding keys join an ecosystem and a name with a NUL
// byte, which PostgreSQL's TEXT cannot hold: they are BYTEA. The
// vulnerability index keeps each finding's ids and aliases in lower case
// beside the digest.
//
// SQLite's single writer serialised Put's read of the version and its
// write; here Put locks the digest's row (creating it first if needed),
// so concurrent scans of one digest each store a version of their own.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/pgdb"
	"berth.dev/berth/internal/reports"
)

const component = "reports"

var migrations = []string{`
-- Digests are COLLATE "C": pages in byte order whatever the locale.
CREATE TABLE scan_reports (
	digest        TEXT COLLATE "C" PRIMARY KEY,
	status        TEXT NOT NULL,
	started_at    BIGINT NOT NULL,
	finished_at   BIGINT NOT NULL,
	db_updated_at BIGINT NOT NULL,
	error         TEXT NOT NULL,
	summary       TEXT NOT NULL,
	version       BIGINT NOT NULL,
	inventory     BYTEA,
	results       BYTEA,
	finding_keys  BYTEA
);
-- Digests pages through the digests with a report.
CREATE INDEX scan_reports_with_report ON scan_reports(digest) WHERE version > 0;

CREATE TABLE scan_report_keys (
	lookup BYTEA NOT NULL,
	digest TEXT COLLATE "C" NOT NULL,
	PRIMARY KEY (lookup, digest)
);
CREATE INDEX scan_report_keys_by_digest ON scan_report_keys(digest);
`, `
-- What the scan found in the image itself (secrets, misconfigurations,
-- license verdicts), kept across re-matches.
ALTER TABLE scan_reports ADD COLUMN image_results BYTEA;

-- Which images a vulnerability (primary id or alias, lower case) is
-- found in.
CREATE TABLE scan_report_vulns (
	vuln   TEXT COLLATE "C" NOT NULL,
	digest TEXT COLLATE "C" NOT NULL,
	PRIMARY KEY (vuln, digest)
);
CREATE INDEX scan_report_vulns_by_digest ON scan_report_vulns(digest);
`, `
-- A report stored, re-matched or deleted (every such change sets version)
-- is announced on ChangesChannel when it commits, so every replica's
-- pull-time policy forgets its verdicts on the digest.
CREATE FUNCTION berth_report_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		PERFORM pg_notify('` + ChangesChannel + `', OLD.digest);
	ELSE
		PERFORM pg_notify('` + ChangesChannel + `', NEW.digest);
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER scan_reports_changed AFTER UPDATE OF version OR DELETE ON scan_reports
	FOR EACH ROW EXECUTE FUNCTION berth_report_changed();
`}

// ChangesChannel is where a change to a digest's report is announced (by
// a trigger, when it commits; the payload is the digest), for the caches
// of verdicts made on reports (internal/policy/pull). Custody's store
// announces a stage approval given or revoked on it the same way.
const ChangesChannel = "berth_reports"

// Store is a reports.Store in PostgreSQL.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
	codec   *reports.Codec
}

var _ reports.Store = (*Store)(nil)

// Open connects to the database at url, migrates the report tables and
// returns a Store that closes its pool on Close.
func Open(ctx context.Context, url string) (*Store, error) {
	pool, err := pgdb.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("reports database: %w", err)
	}
	s, err := New(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownPool = true
	return s, nil
}

// New migrates the report tables behind pool and returns a Store over it;
// Close leaves the pool open.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if err := pgdb.Migrate(ctx, pool, component, migrations); err != nil {
		return nil, fmt.Errorf("reports database: %w", err)
	}
	codec, err := reports.NewCodec()
	if err != nil {
		return nil, err
	}
	return &Store{pool: pool, codec: codec}, nil
}

// Close implements reports.Store.
func (s *Store) Close() error {
	s.codec.Close()
	if s.ownPool {
		s.pool.Close()
	}
	return nil
}

// text makes s storable as TEXT: a scan's error can quote a file name or
// a parser's message, and PostgreSQL refuses a NUL byte in text.
func text(s string) string { return strings.ReplaceAll(s, "\x00", "\uFFFD") }

// SetScan implements reports.Store.
func (s *Store) SetScan(ctx context.Context, d digest.Digest, sc reports.Scan) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO scan_reports
		(digest, status, started_at, finished_at, db_updated_at, error, summary, version)
		VALUES ($1, $2, $3, $4, $5, $6, '{}', 0)
		ON CONFLICT (digest) DO UPDATE SET status = excluded.status, started_at = excluded.started_at,
			finished_at = excluded.finished_at, error = excluded.error`,
		d.String(), string(sc.Status), reports.Nanos(sc.StartedAt), reports.Nanos(sc.FinishedAt), reports.Nanos(sc.DBUpdatedAt), text(sc.Error))
	if err != nil {
		return fmt.Errorf("record scan state of %s: %w", d, err)
	}
	return nil
}

// MarkPending implements reports.Store.
func (s *Store) MarkPending(ctx context.Context, d digest.Digest, queuedAt time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO scan_reports
		(digest, status, started_at, finished_at, db_updated_at, error, summary, version)
		VALUES ($1, 'pending', 0, 0, 0, '', '{}', 0)
		ON CONFLICT (digest) DO UPDATE SET status = 'pending', started_at = 0, finished_at = 0, error = ''
		WHERE scan_reports.started_at < $2`, d.String(), reports.Nanos(queuedAt))
	if err != nil {
		return fmt.Errorf("record queued scan of %s: %w", d, err)
	}
	return nil
}

// Put implements reports.Store.
func (s *Store) Put(ctx context.Context, d digest.Digest, sc reports.Scan, r *match.Report, keys []string, ifVersion int64) error {
	inv, rest, findingKeys, img, err := s.codec.Encode(r)
	if err != nil {
		return fmt.Errorf("store report of %s: %w", d, err)
	}
	summary, err := json.Marshal(reports.Summarize(r))
	if err != nil {
		return fmt.Errorf("store report of %s: %w", d, err)
	}
	lookups := make([][]byte, len(keys))
	for i, k := range keys {
		lookups[i] = []byte(k)
	}
	return pgdb.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		// The row exists before it is locked, so two first scans of a
		// digest also take turns.
		if _, err := tx.Exec(ctx, `INSERT INTO scan_reports
			(digest, status, started_at, finished_at, db_updated_at, error, summary, version)
			VALUES ($1, $2, 0, 0, 0, '', '{}', 0) ON CONFLICT (digest) DO NOTHING`, d.String(), string(reports.Pending)); err != nil {
			return fmt.Errorf("store report of %s: %w", d, err)
		}
		var version int64
		if err := tx.QueryRow(ctx, `SELECT version FROM scan_reports WHERE digest = $1 FOR UPDATE`, d.String()).Scan(&version); err != nil {
			return fmt.Errorf("store report of %s: %w", d, err)
		}
		if ifVersion >= 0 && version != ifVersion {
			return fmt.Errorf("store report of %s: %w (version %d, expected %d)", d, reports.ErrConflict, version, ifVersion)
		}
		if _, err := tx.Exec(ctx, `UPDATE scan_reports SET status = $2, started_at = $3, finished_at = $4,
				db_updated_at = $5, error = $6, summary = $7, version = $8, inventory = $9, results = $10, finding_keys = $11,
				image_results = $12
			WHERE digest = $1`,
			d.String(), string(sc.Status), reports.Nanos(sc.StartedAt), reports.Nanos(sc.FinishedAt), reports.Nanos(sc.DBUpdatedAt), text(sc.Error),
			string(summary), version+1, inv, rest, []byte(findingKeys), img); err != nil {
			return fmt.Errorf("store report of %s: %w", d, err)
		}
		if err := indexVulns(ctx, tx, []digest.Digest{d}, [][]string{reports.FindingIDs(r)}); err != nil {
			return fmt.Errorf("index vulnerabilities of %s: %w", d, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM scan_report_keys WHERE digest = $1`, d.String()); err != nil {
			return fmt.Errorf("store report keys of %s: %w", d, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO scan_report_keys (lookup, digest)
			SELECT DISTINCT k, $2 FROM unnest($1::bytea[]) AS k`, lookups, d.String()); err != nil {
			return fmt.Errorf("store report keys of %s: %w", d, err)
		}
		return nil
	})
}

// StoreRematches implements reports.Store.
func (s *Store) StoreRematches(ctx context.Context, rs []reports.Rematched) ([]digest.Digest, error) {
	type encoded struct {
		*reports.Rematch
		summary []byte
	}
	enc := make([]encoded, len(rs))
	for i := range rs {
		e, err := s.codec.EncodeRematch(&rs[i])
		if err != nil {
			return nil, fmt.Errorf("store re-matched report of %s: %w", rs[i].Digest, err)
		}
		summary, err := json.Marshal(e.Summary)
		if err != nil {
			return nil, err
		}
		enc[i] = encoded{e, summary}
		rs[i].Summary = e.Summary
	}
	// Rows are updated in digest order, so two batches sharing digests
	// lock them alike and never deadlock.
	order := make([]int, len(rs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(rs[a].Digest.String(), rs[b].Digest.String()) })
	var updated map[digest.Digest]bool
	err := pgdb.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		updated = map[digest.Digest]bool{}
		batch := &pgx.Batch{}
		for _, i := range order {
			r, sc := rs[i], rs[i].Scan
			// The summary's counts of what the image itself held (secrets,
			// misconfigurations) are the stored ones: a re-match reads no
			// image.
			batch.Queue(`UPDATE scan_reports SET status = $1, started_at = $2, finished_at = $3,
				db_updated_at = $4, error = $5,
				summary = ($6::jsonb || jsonb_build_object(
					'secrets', coalesce(summary::jsonb -> 'secrets', '0'::jsonb),
					'misconfigurations', coalesce(summary::jsonb -> 'misconfigurations', '0'::jsonb)))::text,
				results = $7, finding_keys = $8, version = version + 1
				WHERE digest = $9 AND version = $10`,
				string(sc.Status), reports.Nanos(sc.StartedAt), reports.Nanos(sc.FinishedAt), reports.Nanos(sc.DBUpdatedAt), text(sc.Error),
				string(enc[i].summary), enc[i].Rest, []byte(enc[i].Keys), r.Digest.String(), r.IfVersion)
		}
		res := tx.SendBatch(ctx, batch)
		for _, i := range order {
			tag, err := res.Exec()
			if err != nil {
				res.Close()
				return fmt.Errorf("store re-matched report of %s: %w", rs[i].Digest, err)
			}
			if tag.RowsAffected() == 1 { // else replaced by a newer scan meanwhile
				updated[rs[i].Digest] = true
			}
		}
		if err := res.Close(); err != nil {
			return err
		}
		// Every updated report's index rows in one statement.
		var ds []digest.Digest
		var ids [][]string
		for _, i := range order {
			if updated[rs[i].Digest] {
				ds, ids = append(ds, rs[i].Digest), append(ids, enc[i].IDs)
			}
		}
		if err := indexVulns(ctx, tx, ds, ids); err != nil {
			return fmt.Errorf("index vulnerabilities of re-matched reports: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// In the order given, as the SQLite store returns them.
	var stored []digest.Digest
	for _, r := range rs {
		if updated[r.Digest] {
			stored = append(stored, r.Digest)
		}
	}
	return stored, nil
}

// Get implements reports.Store.
func (s *Store) Get(ctx context.Context, d digest.Digest, withReport bool) (*reports.Record, error) {
	q := `SELECT ` + reports.RecordColumns
	if withReport {
		q += `, inventory, results, image_results`
	}
	rec, blobs, err := reports.ScanRecord(s.pool.QueryRow(ctx, q+` FROM scan_reports WHERE digest = $1`, d.String()), withReport)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", reports.ErrNotFound, d)
	}
	if err != nil {
		return nil, fmt.Errorf("scan record of %s: %w", d, err)
	}
	if withReport && blobs[1] != nil {
		if rec.Report, err = s.codec.DecodeReport(blobs[0], blobs[1], blobs[2]); err != nil {
			return nil, fmt.Errorf("%s: %w", d, err)
		}
	}
	return rec, nil
}

func digestStrings(ds []digest.Digest) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

// Records implements reports.Store.
func (s *Store) Records(ctx context.Context, ds []digest.Digest) (map[digest.Digest]*reports.Record, error) {
	out := make(map[digest.Digest]*reports.Record, len(ds))
	rows, err := s.pool.Query(ctx, `SELECT `+reports.RecordColumns+` FROM scan_reports WHERE digest = ANY($1)`, digestStrings(ds))
	if err != nil {
		return nil, fmt.Errorf("scan records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		rec, _, err := reports.ScanRecord(rows, false)
		if err != nil {
			return nil, fmt.Errorf("scan records: %w", err)
		}
		out[rec.Digest] = rec
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("scan records: %w", err)
	}
	return out, nil
}

// RematchInputs implements reports.Store.
func (s *Store) RematchInputs(ctx context.Context, ds []digest.Digest) ([]reports.RematchInput, error) {
	rows, err := s.pool.Query(ctx, `SELECT digest, status, started_at, finished_at, db_updated_at, error, version,
		inventory, finding_keys, summary, results FROM scan_reports WHERE version > 0 AND digest = ANY($1)`, digestStrings(ds))
	if err != nil {
		return nil, fmt.Errorf("read reports to re-match: %w", err)
	}
	defer rows.Close()
	var out []reports.RematchInput
	for rows.Next() {
		var (
			in                                    reports.RematchInput
			d, status, errText                    string
			started, finished, dbUpdated, version int64
			inv, keys                             []byte
			summary                               string
		)
		if err := rows.Scan(&d, &status, &started, &finished, &dbUpdated, &errText, &version, &inv, &keys, &summary, &in.Results); err != nil {
			return nil, fmt.Errorf("read reports to re-match: %w", err)
		}
		in.Digest, in.Version = digest.Digest(d), version
		in.Scan = reports.Scan{Status: reports.Status(status), StartedAt: reports.FromNanos(started), FinishedAt: reports.FromNanos(finished),
			DBUpdatedAt: reports.FromNanos(dbUpdated), Error: errText}
		if err := s.codec.DecodeInventory(inv, &in.Inventory); err != nil {
			return nil, fmt.Errorf("inventory of %s: %w", d, err)
		}
		in.Findings = reports.ParseFindingKeys(string(keys))
		if err := json.Unmarshal([]byte(summary), &in.Summary); err != nil {
			return nil, fmt.Errorf("summary of %s: %w", d, err)
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read reports to re-match: %w", err)
	}
	return out, nil
}

// Affected implements reports.Store.
func (s *Store) Affected(ctx context.Context, keys []string) ([]digest.Digest, error) {
	lookups := make([][]byte, len(keys))
	for i, k := range keys {
		lookups[i] = []byte(k)
	}
	return digests(pgdb.Strings(s.pool.Query(ctx, `SELECT DISTINCT digest FROM scan_report_keys WHERE lookup = ANY($1::bytea[])
		ORDER BY digest`, lookups)))
}

// digests converts what a query for affected digests returned.
func digests(ds []string, err error) ([]digest.Digest, error) {
	if err != nil {
		return nil, fmt.Errorf("affected reports: %w", err)
	}
	out := make([]digest.Digest, len(ds))
	for i, d := range ds {
		out[i] = digest.Digest(d)
	}
	return out, nil
}

// AffectedEcosystems implements reports.Store: a key is the ecosystem, a
// NUL and the name, so an ecosystem's keys are one range of the index.
func (s *Store) AffectedEcosystems(ctx context.Context, ecosystems []string) ([]digest.Digest, error) {
	from, to := make([][]byte, len(ecosystems)), make([][]byte, len(ecosystems))
	for i, eco := range ecosystems {
		from[i], to[i] = []byte(eco+"\x00"), []byte(eco+"\x01")
	}
	return digests(pgdb.Strings(s.pool.Query(ctx, `SELECT DISTINCT k.digest FROM scan_report_keys k
		JOIN unnest($1::bytea[], $2::bytea[]) AS r(lo, hi) ON k.lookup >= r.lo AND k.lookup < r.hi
		ORDER BY k.digest`, from, to)))
}

// Digests implements reports.Store.
func (s *Store) Digests(ctx context.Context, after digest.Digest, n int) ([]digest.Digest, error) {
	ds, err := pgdb.Strings(s.pool.Query(ctx, `SELECT digest FROM scan_reports WHERE digest > $1 AND version > 0
		ORDER BY digest LIMIT $2`, after.String(), n))
	if err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	out := make([]digest.Digest, len(ds))
	for i, d := range ds {
		out[i] = digest.Digest(d)
	}
	return out, nil
}

// Delete implements reports.Store.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	return pgdb.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM scan_report_keys WHERE digest = $1`, d.String()); err != nil {
			return fmt.Errorf("delete report of %s: %w", d, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM scan_report_vulns WHERE digest = $1`, d.String()); err != nil {
			return fmt.Errorf("delete report of %s: %w", d, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM scan_reports WHERE digest = $1`, d.String()); err != nil {
			return fmt.Errorf("delete report of %s: %w", d, err)
		}
		return nil
	})
}

// indexVulns makes the vulnerability index name each digest of ds under
// exactly the ids and aliases ids[i] of its findings (lower-cased, as
// searches are), in one statement. The index is written as a diff: a
// re-match keeps nearly all of a report's ids, and deleting and inserting
// every row again was most of a re-match's time in the database (see
// docs/benchmarks.md). The rows the digests have are read once; those
// not wanted are deleted and the wanted ones they lack inserted, so the
// rows that stay are not written. Each id names its digest by position
// in ds, not by a copy of the digest.
func indexVulns(ctx context.Context, tx pgx.Tx, ds []digest.Digest, ids [][]string) error {
	if len(ds) == 0 {
		return nil
	}
	var vulns []string
	var of []int32
	for i := range ds {
		for _, id := range ids[i] {
			if id == "" {
				continue
			}
			vulns, of = append(vulns, strings.ToLower(text(id))), append(of, int32(i+1))
		}
	}
	_, err := tx.Exec(ctx, `WITH want AS (
			SELECT w.vuln, d.digest FROM unnest($2::text[], $3::int4[]) AS w(vuln, n)
				JOIN unnest($1::text[]) WITH ORDINALITY AS d(digest, n) ON d.n = w.n
		), have AS MATERIALIZED (
			SELECT vuln, digest FROM scan_report_vulns WHERE digest = ANY($1::text[])
		), gone AS (
			-- The digests' condition again, so that the rows to delete
			-- are found through the digest index, never by reading the
			-- whole table (which the planner chose without it).
			DELETE FROM scan_report_vulns v
				USING (SELECT vuln, digest FROM have EXCEPT SELECT vuln, digest FROM want) AS g
				WHERE v.digest = ANY($1::text[]) AND v.vuln = g.vuln AND v.digest = g.digest
		)
		INSERT INTO scan_report_vulns (vuln, digest)
			SELECT vuln, digest FROM want EXCEPT SELECT vuln, digest FROM have
		ON CONFLICT DO NOTHING`,
		digestStrings(ds), vulns, of)
	return err
}

// IndexVulnerabilities implements reports.Store: this store writes the
// index with every report, so it is never behind.
func (s *Store) IndexVulnerabilities(context.Context) (int, error) { return 0, nil }

// Vulnerable implements reports.Store.
func (s *Store) Vulnerable(ctx context.Context, id string) ([]digest.Digest, error) {
	if id == "" {
		return nil, nil
	}
	ds, err := pgdb.Strings(s.pool.Query(ctx, `SELECT digest FROM scan_report_vulns WHERE vuln = $1 ORDER BY digest`,
		strings.ToLower(text(id))))
	if err != nil {
		return nil, fmt.Errorf("images with %s: %w", id, err)
	}
	var out []digest.Digest
	for _, d := range ds {
		out = append(out, digest.Digest(d))
	}
	return out, nil
}
