// Package sqlite is the embedded reports.Store, in meta.db beside the
// registry's metadata. A report is stored as reports.Codec writes it: the
// inventory, the rest (findings, warnings), which a re-match rewrites
// alone, and the image results, as zstd-compressed CBOR columns, plus the
// findings' identities as text. Summaries and states are columns, so
// listings never decode a report.
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	sqlitedb "berth.dev/berth/internal/audit/sqlite"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/reports"
)

var migrations = []string{`
CREATE TABLE scan_reports (
	digest        TEXT PRIMARY KEY,
	status        TEXT NOT NULL,
	started_at    INTEGER NOT NULL,
	finished_at   INTEGER NOT NULL,
	db_updated_at INTEGER NOT NULL,
	error         TEXT NOT NULL,
	summary       TEXT NOT NULL,
	version       INTEGER NOT NULL,
	inventory     BLOB,
	results       BLOB,
	finding_keys  TEXT,
	image_results BLOB
);

CREATE TABLE scan_report_keys (
	lookup TEXT NOT NULL,
	digest TEXT NOT NULL,
	PRIMARY KEY (lookup, digest)
);
CREATE INDEX scan_report_keys_by_digest ON scan_report_keys(digest);
`, `
CREATE TABLE scan_vuln_ids (
	n  INTEGER PRIMARY KEY,
	id TEXT NOT NULL UNIQUE COLLATE NOCASE
);
CREATE TABLE scan_report_nums (
	n      INTEGER PRIMARY KEY,
	digest TEXT NOT NULL UNIQUE
);
CREATE TABLE scan_report_vulns (
	vuln   INTEGER NOT NULL,
	report INTEGER NOT NULL,
	PRIMARY KEY (vuln, report)
) WITHOUT ROWID;
CREATE INDEX scan_report_vulns_by_report ON scan_report_vulns(report);
ALTER TABLE scan_reports ADD COLUMN vulns_indexed INTEGER NOT NULL DEFAULT 0;
`, `
CREATE INDEX scan_reports_vulns_unindexed ON scan_reports(digest) WHERE vulns_indexed = 0 AND version > 0;
`}

// Store is a reports.Store in SQLite.
type Store struct {
	db    *sqlitedb.DB
	codec *reports.Codec
}

var _ reports.Store = (*Store)(nil)

// Open opens (creating and migrating if needed) the report tables in the
// database at path.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitedb.OpenDB(ctx, path, "reports", migrations)
	if err != nil {
		return nil, err
	}
	codec, err := reports.NewCodec()
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Store{db: db, codec: codec}, nil
}

// Close implements reports.Store.
func (s *Store) Close() error {
	s.codec.Close()
	return s.db.Close()
}

// SetScan implements reports.Store.
func (s *Store) SetScan(ctx context.Context, d digest.Digest, sc reports.Scan) error {
	_, err := s.db.W.ExecContext(ctx, `INSERT INTO scan_reports
		(digest, status, started_at, finished_at, db_updated_at, error, summary, version)
		VALUES (?, ?, ?, ?, ?, ?, '{}', 0)
		ON CONFLICT (digest) DO UPDATE SET status = excluded.status, started_at = excluded.started_at,
			finished_at = excluded.finished_at, error = excluded.error`,
		d.String(), string(sc.Status), reports.Nanos(sc.StartedAt), reports.Nanos(sc.FinishedAt), reports.Nanos(sc.DBUpdatedAt), sc.Error)
	if err != nil {
		return fmt.Errorf("record scan state of %s: %w", d, err)
	}
	return nil
}

// MarkPending implements reports.Store.
func (s *Store) MarkPending(ctx context.Context, d digest.Digest, queuedAt time.Time) error {
	_, err := s.db.W.ExecContext(ctx, `INSERT INTO scan_reports
		(digest, status, started_at, finished_at, db_updated_at, error, summary, version)
		VALUES (?, 'pending', 0, 0, 0, '', '{}', 0)
		ON CONFLICT (digest) DO UPDATE SET status = 'pending', started_at = 0, finished_at = 0, error = ''
		WHERE scan_reports.started_at < ?`, d.String(), reports.Nanos(queuedAt))
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
	return s.db.InTx(ctx, "store report", func(tx *sql.Tx) error {
		var version int64
		err := tx.QueryRowContext(ctx, `SELECT version FROM scan_reports WHERE digest = ?`, d.String()).Scan(&version)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store report of %s: %w", d, err)
		}
		if ifVersion >= 0 && version != ifVersion {
			return fmt.Errorf("store report of %s: %w (version %d, expected %d)", d, reports.ErrConflict, version, ifVersion)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO scan_reports
			(digest, status, started_at, finished_at, db_updated_at, error, summary, version, inventory, results, finding_keys, image_results)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (digest) DO UPDATE SET status = excluded.status, started_at = excluded.started_at,
				finished_at = excluded.finished_at, db_updated_at = excluded.db_updated_at, error = excluded.error,
				summary = excluded.summary, version = excluded.version, inventory = excluded.inventory,
				results = excluded.results, finding_keys = excluded.finding_keys, image_results = excluded.image_results`,
			d.String(), string(sc.Status), reports.Nanos(sc.StartedAt), reports.Nanos(sc.FinishedAt), reports.Nanos(sc.DBUpdatedAt), sc.Error,
			string(summary), version+1, inv, rest, findingKeys, img); err != nil {
			return fmt.Errorf("store report of %s: %w", d, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM scan_report_keys WHERE digest = ?`, d.String()); err != nil {
			return fmt.Errorf("store report keys of %s: %w", d, err)
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO scan_report_keys (lookup, digest) VALUES (?, ?) ON CONFLICT DO NOTHING`)
		if err != nil {
			return fmt.Errorf("store report keys of %s: %w", d, err)
		}
		defer stmt.Close()
		for _, k := range keys {
			if _, err := stmt.ExecContext(ctx, k, d.String()); err != nil {
				return fmt.Errorf("store report keys of %s: %w", d, err)
			}
		}
		return indexVulns(ctx, tx, d, reports.FindingIDs(r))
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
	var stored []digest.Digest
	err := s.db.InTx(ctx, "store re-matched reports", func(tx *sql.Tx) error {
		stored = stored[:0]
		// The summary's counts of what the image itself held (secrets,
		// misconfigurations) are the stored ones: a re-match reads no image.
		// The vulnerability index is left to IndexVulnerabilities (see
		// there why), and marked behind.
		stmt, err := tx.PrepareContext(ctx, `UPDATE scan_reports SET status = ?, started_at = ?, finished_at = ?,
			db_updated_at = ?, error = ?,
			summary = json_set(?, '$.secrets', coalesce(json_extract(summary, '$.secrets'), 0),
				'$.misconfigurations', coalesce(json_extract(summary, '$.misconfigurations'), 0)),
			results = ?, finding_keys = ?, version = version + 1, vulns_indexed = 0
			WHERE digest = ? AND version = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i, r := range rs {
			sc := r.Scan
			res, err := stmt.ExecContext(ctx, string(sc.Status), reports.Nanos(sc.StartedAt), reports.Nanos(sc.FinishedAt), reports.Nanos(sc.DBUpdatedAt),
				sc.Error, string(enc[i].summary), enc[i].Rest, enc[i].Keys, r.Digest.String(), r.IfVersion)
			if err != nil {
				return fmt.Errorf("store re-matched report of %s: %w", r.Digest, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("store re-matched report of %s: %w", r.Digest, err)
			} else if n == 0 {
				continue // replaced by a newer scan meanwhile
			}
			stored = append(stored, r.Digest)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return stored, nil
}

// Get implements reports.Store.
func (s *Store) Get(ctx context.Context, d digest.Digest, withReport bool) (*reports.Record, error) {
	q := `SELECT ` + reports.RecordColumns
	if withReport {
		q += `, inventory, results, image_results`
	}
	rec, blobs, err := reports.ScanRecord(s.db.R.QueryRowContext(ctx, q+` FROM scan_reports WHERE digest = ?`, d.String()), withReport)
	if errors.Is(err, sql.ErrNoRows) {
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

// batch bounds the parameters of one IN (...) query; SQLite allows 32,766.
const batch = 500

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// Records implements reports.Store.
func (s *Store) Records(ctx context.Context, ds []digest.Digest) (map[digest.Digest]*reports.Record, error) {
	out := make(map[digest.Digest]*reports.Record, len(ds))
	for start := 0; start < len(ds); start += batch {
		part := ds[start:min(start+batch, len(ds))]
		args := make([]any, len(part))
		for i, d := range part {
			args[i] = d.String()
		}
		rows, err := s.db.R.QueryContext(ctx, `SELECT `+reports.RecordColumns+` FROM scan_reports WHERE digest IN (`+placeholders(len(part))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("scan records: %w", err)
		}
		for rows.Next() {
			rec, _, err := reports.ScanRecord(rows, false)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("scan records: %w", err)
			}
			out[rec.Digest] = rec
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("scan records: %w", err)
		}
	}
	return out, nil
}

// RematchInputs implements reports.Store.
func (s *Store) RematchInputs(ctx context.Context, ds []digest.Digest) ([]reports.RematchInput, error) {
	var out []reports.RematchInput
	for start := 0; start < len(ds); start += batch {
		part := ds[start:min(start+batch, len(ds))]
		args := make([]any, len(part))
		for i, d := range part {
			args[i] = d.String()
		}
		rows, err := s.db.R.QueryContext(ctx, `SELECT digest, status, started_at, finished_at, db_updated_at, error, version,
			inventory, finding_keys, summary, results FROM scan_reports WHERE version > 0 AND digest IN (`+placeholders(len(part))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read reports to re-match: %w", err)
		}
		for rows.Next() {
			var (
				in                                    reports.RematchInput
				d, status, errText                    string
				started, finished, dbUpdated, version int64
				inv                                   []byte
				keys                                  sql.NullString
				summary                               string
			)
			if err := rows.Scan(&d, &status, &started, &finished, &dbUpdated, &errText, &version, &inv, &keys, &summary, &in.Results); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read reports to re-match: %w", err)
			}
			in.Digest, in.Version = digest.Digest(d), version
			in.Scan = reports.Scan{Status: reports.Status(status), StartedAt: reports.FromNanos(started), FinishedAt: reports.FromNanos(finished),
				DBUpdatedAt: reports.FromNanos(dbUpdated), Error: errText}
			if err := s.codec.DecodeInventory(inv, &in.Inventory); err != nil {
				rows.Close()
				return nil, fmt.Errorf("inventory of %s: %w", d, err)
			}
			in.Findings = reports.ParseFindingKeys(keys.String)
			if err := json.Unmarshal([]byte(summary), &in.Summary); err != nil {
				rows.Close()
				return nil, fmt.Errorf("summary of %s: %w", d, err)
			}
			out = append(out, in)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("read reports to re-match: %w", err)
		}
	}
	return out, nil
}

// Affected implements reports.Store.
func (s *Store) Affected(ctx context.Context, keys []string) ([]digest.Digest, error) {
	var queries []digestQuery
	for start := 0; start < len(keys); start += batch {
		part := keys[start:min(start+batch, len(keys))]
		args := make([]any, len(part))
		for i, k := range part {
			args[i] = k
		}
		queries = append(queries, digestQuery{`SELECT DISTINCT digest FROM scan_report_keys WHERE lookup IN (` + placeholders(len(part)) + `)`, args})
	}
	return s.affected(ctx, queries)
}

// AffectedEcosystems implements reports.Store: a key is the ecosystem, a
// NUL and the name, so an ecosystem's keys are one range of the index.
func (s *Store) AffectedEcosystems(ctx context.Context, ecosystems []string) ([]digest.Digest, error) {
	queries := make([]digestQuery, len(ecosystems))
	for i, eco := range ecosystems {
		queries[i] = digestQuery{`SELECT DISTINCT digest FROM scan_report_keys WHERE lookup >= ? AND lookup < ?`, []any{eco + "\x00", eco + "\x01"}}
	}
	return s.affected(ctx, queries)
}

// digestQuery is a query for digests and its arguments.
type digestQuery struct {
	q    string
	args []any
}

// affected runs queries and returns the digests they find, each once, in
// order.
func (s *Store) affected(ctx context.Context, queries []digestQuery) ([]digest.Digest, error) {
	seen := map[string]bool{}
	for _, dq := range queries {
		rows, err := s.db.R.QueryContext(ctx, dq.q, dq.args...)
		if err != nil {
			return nil, fmt.Errorf("affected reports: %w", err)
		}
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				rows.Close()
				return nil, fmt.Errorf("affected reports: %w", err)
			}
			seen[d] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("affected reports: %w", err)
		}
	}
	out := make([]digest.Digest, 0, len(seen))
	for d := range seen {
		out = append(out, digest.Digest(d))
	}
	slices.Sort(out)
	return out, nil
}

// Digests implements reports.Store.
func (s *Store) Digests(ctx context.Context, after digest.Digest, n int) ([]digest.Digest, error) {
	rows, err := s.db.R.QueryContext(ctx, `SELECT digest FROM scan_reports WHERE digest > ? AND version > 0 ORDER BY digest LIMIT ?`,
		after.String(), n)
	if err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	defer rows.Close()
	var out []digest.Digest
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("list reports: %w", err)
		}
		out = append(out, digest.Digest(d))
	}
	return out, rows.Err()
}

// Delete implements reports.Store.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	return s.db.InTx(ctx, "delete report", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM scan_report_keys WHERE digest = ?`, d.String()); err != nil {
			return fmt.Errorf("delete report of %s: %w", d, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM scan_reports WHERE digest = ?`, d.String()); err != nil {
			return fmt.Errorf("delete report of %s: %w", d, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM scan_report_vulns WHERE report IN
			(SELECT n FROM scan_report_nums WHERE digest = ?)`, d.String()); err != nil {
			return fmt.Errorf("delete report of %s: %w", d, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM scan_report_nums WHERE digest = ?`, d.String()); err != nil {
			return fmt.Errorf("delete report of %s: %w", d, err)
		}
		return nil
	})
}

// indexVulns makes the vulnerability index name d under exactly ids, in
// tx. Ids and digests are numbered once (scan_vuln_ids,
// scan_report_nums), so an index row is two integers: an image's few
// hundred findings with their aliases cost kilobytes, not the megabytes
// their text would.
func indexVulns(ctx context.Context, tx *sql.Tx, d digest.Digest, ids []string) error {
	ix, err := newVulnIndexer(ctx, tx)
	if err != nil {
		return err
	}
	defer ix.close()
	return ix.index(ctx, d, ids)
}

// vulnIndexer keeps the vulnerability index of reports within one
// transaction, its statements prepared once for a batch of reports. It
// writes only what changed: a re-match that adds one finding to a report
// of fifty adds one row.
type vulnIndexer struct {
	tx                                                 *sql.Tx
	num, nums, current, findID, newID, unlink, indexed *sql.Stmt
	// vulnNums caches the numbers of ids (upper-cased, as NOCASE folds
	// them) within the transaction: a batch of re-matched reports names
	// the same new advisories again and again.
	vulnNums map[string]int64
	// links (vulnerability, report) and the digests staged wait for flush.
	links  [][2]int64
	staged []string
}

func newVulnIndexer(ctx context.Context, tx *sql.Tx) (*vulnIndexer, error) {
	ix := &vulnIndexer{tx: tx}
	for _, p := range []struct {
		stmt **sql.Stmt
		q    string
	}{
		{&ix.num, `SELECT n FROM scan_report_nums WHERE digest = ?`},
		{&ix.nums, `INSERT INTO scan_report_nums (digest) VALUES (?) RETURNING n`},
		{&ix.current, `SELECT v.n, v.id FROM scan_report_vulns r JOIN scan_vuln_ids v ON v.n = r.vuln WHERE r.report = ?`},
		{&ix.findID, `SELECT n FROM scan_vuln_ids WHERE id = ?`},
		{&ix.newID, `INSERT INTO scan_vuln_ids (id) VALUES (?) RETURNING n`},
		{&ix.unlink, `DELETE FROM scan_report_vulns WHERE vuln = ? AND report = ?`},
		{&ix.indexed, `UPDATE scan_reports SET vulns_indexed = 1 WHERE digest = ? AND vulns_indexed = 0`},
	} {
		var err error
		if *p.stmt, err = tx.PrepareContext(ctx, p.q); err != nil {
			ix.close()
			return nil, fmt.Errorf("index vulnerabilities: %w", err)
		}
	}
	return ix, nil
}

func (ix *vulnIndexer) close() {
	for _, st := range []*sql.Stmt{ix.num, ix.nums, ix.current, ix.findID, ix.newID, ix.unlink, ix.indexed} {
		if st != nil {
			st.Close()
		}
	}
}

// index makes the index name d under exactly ids. Ids and digests are
// numbered once (scan_vuln_ids, scan_report_nums), so an index row is two
// integers; ids compare case-insensitively, as SQLite's NOCASE folds them
// (ASCII only, which advisory ids are).
func (ix *vulnIndexer) index(ctx context.Context, d digest.Digest, ids []string) error {
	if err := ix.stage(ctx, d, ids); err != nil {
		return err
	}
	return ix.flush(ctx)
}

// stage unlinks the ids d is indexed under and no longer has, and keeps
// the links it lacks for flush, which writes the links of many reports in
// the index's order.
func (ix *vulnIndexer) stage(ctx context.Context, d digest.Digest, ids []string) error {
	fail := func(err error) error { return fmt.Errorf("index the vulnerabilities of %s: %w", d, err) }
	var report int64
	err := ix.num.QueryRowContext(ctx, d.String()).Scan(&report)
	if errors.Is(err, sql.ErrNoRows) {
		err = ix.nums.QueryRowContext(ctx, d.String()).Scan(&report)
	}
	if err != nil {
		return fail(err)
	}
	want := make(map[string]string, len(ids))
	for _, id := range ids {
		if id != "" {
			if _, ok := want[strings.ToUpper(id)]; !ok {
				want[strings.ToUpper(id)] = id
			}
		}
	}
	rows, err := ix.current.QueryContext(ctx, report)
	if err != nil {
		return fail(err)
	}
	have := map[string]bool{}
	var gone []int64
	for rows.Next() {
		var n int64
		var id string
		if err := rows.Scan(&n, &id); err != nil {
			rows.Close()
			return fail(err)
		}
		key := strings.ToUpper(id)
		have[key] = true
		if _, ok := want[key]; !ok {
			gone = append(gone, n)
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return fail(err)
	}
	for _, n := range gone {
		if _, err := ix.unlink.ExecContext(ctx, n, report); err != nil {
			return fail(err)
		}
	}
	for key, id := range want {
		if have[key] {
			continue
		}
		vuln, err := ix.vulnNum(ctx, id)
		if err != nil {
			return fail(err)
		}
		ix.links = append(ix.links, [2]int64{vuln, report})
	}
	ix.staged = append(ix.staged, d.String())
	return nil
}

// linkRows bounds the rows of one insert (two parameters each).
const linkRows = 250

// flush writes the links stage kept, sorted as the index is (vulnerability
// first), many rows a statement, and marks their reports indexed: a full
// re-match adds about a hundred ids to every report, and written in a
// report's order they land all over the index (a page written for every
// few rows), and one statement a row cost ~11 µs a row under the write
// lock.
func (ix *vulnIndexer) flush(ctx context.Context) error {
	slices.SortFunc(ix.links, func(a, b [2]int64) int {
		if c := cmp.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return cmp.Compare(a[1], b[1])
	})
	args := make([]any, 0, 2*min(len(ix.links), linkRows))
	insert := func() error {
		if len(args) == 0 {
			return nil
		}
		q := `INSERT INTO scan_report_vulns (vuln, report) VALUES (?, ?)` + strings.Repeat(`, (?, ?)`, len(args)/2-1) + ` ON CONFLICT DO NOTHING`
		_, err := ix.tx.ExecContext(ctx, q, args...)
		args = args[:0]
		return err
	}
	for _, l := range ix.links {
		args = append(args, l[0], l[1])
		if len(args) == 2*linkRows {
			if err := insert(); err != nil {
				return fmt.Errorf("index vulnerabilities: %w", err)
			}
		}
	}
	if err := insert(); err != nil {
		return fmt.Errorf("index vulnerabilities: %w", err)
	}
	for _, d := range ix.staged {
		if _, err := ix.indexed.ExecContext(ctx, d); err != nil {
			return fmt.Errorf("index the vulnerabilities of %s: %w", d, err)
		}
	}
	ix.links, ix.staged = ix.links[:0], ix.staged[:0]
	return nil
}

// vulnNum returns the number of id, numbering it if it has none.
func (ix *vulnIndexer) vulnNum(ctx context.Context, id string) (int64, error) {
	key := strings.ToUpper(id)
	if n, ok := ix.vulnNums[key]; ok {
		return n, nil
	}
	var n int64
	err := ix.findID.QueryRowContext(ctx, id).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		err = ix.newID.QueryRowContext(ctx, id).Scan(&n)
	}
	if err != nil {
		return 0, err
	}
	if ix.vulnNums == nil {
		ix.vulnNums = map[string]int64{}
	}
	ix.vulnNums[key] = n
	return n, nil
}

// indexBatch is how many reports IndexVulnerabilities indexes a
// transaction.
const indexBatch = 500

// IndexVulnerabilities implements reports.Store. StoreRematches leaves the
// index of the reports it stores behind: an update that adds an advisory
// to most packages adds a hundred rows to every report's index, scattered
// over the whole (vulnerability, report) tree, and writing them with the
// re-match tripled its time (33 s against 10 s for 10,000 reports, see
// docs/benchmarks.md). The index is caught up here, a batch a
// transaction, from the findings' keys kept beside each report (no report
// is decoded); Vulnerable stays exact meanwhile. The same catches up the
// reports stored before the index existed, and those a stop left behind
// (the server runs it at start, in the background: a large backlog would
// otherwise hold the start for minutes).
func (s *Store) IndexVulnerabilities(ctx context.Context) (int, error) {
	done := 0
	for {
		indexed := 0
		// Read and index in one write transaction: a report re-matched
		// between the two would be marked indexed under its old findings.
		err := s.db.InTx(ctx, "index vulnerabilities", func(tx *sql.Tx) error {
			indexed = 0
			type pending struct {
				d   digest.Digest
				ids []string
			}
			var batch []pending
			rows, err := tx.QueryContext(ctx, `SELECT digest, finding_keys FROM scan_reports
				WHERE vulns_indexed = 0 AND version > 0 LIMIT ?`, indexBatch)
			if err != nil {
				return err
			}
			for rows.Next() {
				var d string
				var keys sql.NullString
				if err := rows.Scan(&d, &keys); err != nil {
					rows.Close()
					return err
				}
				p := pending{d: digest.Digest(d)}
				for _, k := range reports.ParseFindingKeys(keys.String) {
					p.ids = append(p.ids, k.IDs...)
				}
				batch = append(batch, p)
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return err
			}
			ix, err := newVulnIndexer(ctx, tx)
			if err != nil {
				return err
			}
			defer ix.close()
			for _, p := range batch {
				if err := ix.stage(ctx, p.d, p.ids); err != nil {
					return err
				}
			}
			if err := ix.flush(ctx); err != nil {
				return err
			}
			indexed = len(batch)
			return nil
		})
		if err != nil {
			return done, fmt.Errorf("index the vulnerabilities of stored reports: %w", err)
		}
		done += indexed
		if indexed < indexBatch {
			return done, nil
		}
	}
}

// Vulnerable implements reports.Store: the index answers for the reports
// it is up to date with, and the findings' keys of those it is behind.
func (s *Store) Vulnerable(ctx context.Context, id string) ([]digest.Digest, error) {
	fail := func(err error) error { return fmt.Errorf("images with %s: %w", id, err) }
	tx, err := s.db.R.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fail(err)
	}
	defer tx.Rollback()
	// One read transaction, so that a report indexed meanwhile is seen on
	// exactly one side.
	rows, err := tx.QueryContext(ctx, `SELECT r.digest FROM scan_vuln_ids v
		JOIN scan_report_vulns x ON x.vuln = v.n
		JOIN scan_report_nums r ON r.n = x.report
		JOIN scan_reports s ON s.digest = r.digest AND s.vulns_indexed = 1
		WHERE v.id = ?`, id)
	if err != nil {
		return nil, fail(err)
	}
	var out []digest.Digest
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			rows.Close()
			return nil, fail(err)
		}
		out = append(out, digest.Digest(d))
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, fail(err)
	}
	rows.Close()
	// instr narrows the reports behind to those that may name id; the
	// keys are then read exactly (ids compare case-insensitively).
	rows, err = tx.QueryContext(ctx, `SELECT digest, finding_keys FROM scan_reports
		WHERE vulns_indexed = 0 AND version > 0 AND instr(upper(finding_keys), upper(?)) > 0`, id)
	if err != nil {
		return nil, fail(err)
	}
	defer rows.Close()
	for rows.Next() {
		var d string
		var keys sql.NullString
		if err := rows.Scan(&d, &keys); err != nil {
			return nil, fail(err)
		}
		if namesID(reports.ParseFindingKeys(keys.String), id) {
			out = append(out, digest.Digest(d))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fail(err)
	}
	slices.Sort(out)
	return out, nil
}

// namesID reports whether one of keys has id among its ids.
func namesID(keys []reports.FindingKey, id string) bool {
	for _, k := range keys {
		for _, x := range k.IDs {
			if strings.EqualFold(x, id) {
				return true
			}
		}
	}
	return false
}
