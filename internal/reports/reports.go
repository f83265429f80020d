// Package reports keeps the server's scan results: for every manifest
// digest, the state of its scan and the match.Report it produced (the
// inventory and the findings, exactly what `berth scan --format json`
// writes before filtering), with a per-severity summary that listings read
// without decoding reports, an index from each (ecosystem, name) the
// inventory looks up to the digests that look it up, so a database update
// re-matches only the reports it can change (clair's AffectedManifests),
// and an index from every vulnerability id and alias found to the digests
// whose findings name it, so "which images have CVE-…" is one indexed read.
//
// Reports are keyed by manifest digest, not repository: the same image
// pushed to ten repositories is inventoried and stored once. Who may read
// a report is the registry's question (may the caller pull a repository
// holding the digest?), asked before the store is.
//
// Implementations: internal/reports/sqlite (in meta.db); reportstest is the
// suite every implementation passes.
package reports

import (
	"context"
	"errors"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
)

// ErrNotFound means the store has no record of the digest.
var ErrNotFound = errors.New("no scan of this artifact")

// Status is where a scan is.
type Status string

// The states of a scan, with the API's names.
const (
	Pending Status = "pending" // queued
	Running Status = "running"
	Done    Status = "done"
	Failed  Status = "failed"
)

// Scan is the state of one digest's scan: the "scan" object of the API.
type Scan struct {
	Status     Status    `json:"status"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// DBUpdatedAt is the update time of the vulnerability database the
	// stored findings were matched against.
	DBUpdatedAt time.Time `json:"db_updated_at,omitzero"`
	Error       string    `json:"error,omitempty"`
}

// Summary counts a report's findings by severity, and how many have a fix.
type Summary struct {
	Critical int `json:"critical"`
	High     int `json:"high"`
	Medium   int `json:"medium"`
	Low      int `json:"low"`
	Unknown  int `json:"unknown"`
	Total    int `json:"total"`
	Fixable  int `json:"fixable"`
	Packages int `json:"packages"`
	// Secrets counts the secrets found (allowed ones not counted) and
	// Misconfigurations the failed checks, when those scanners ran.
	Secrets           int `json:"secrets"`
	Misconfigurations int `json:"misconfigurations"`
}

// Summarize counts r's findings. NONE-rated findings count as low.
func Summarize(r *match.Report) Summary {
	s := Summary{Packages: len(r.Inventory.Packages), Misconfigurations: len(r.Misconfigurations)}
	for _, f := range r.Secrets {
		if f.Allowed == "" {
			s.Secrets++
		}
	}
	for i := range r.Findings {
		s.count(&r.Findings[i], 1)
	}
	return s
}

// count adds n (1 or -1) times f to the counts.
func (s *Summary) count(f *match.Finding, n int) {
	s.Total += n
	switch f.Severity {
	case match.SeverityCritical:
		s.Critical += n
	case match.SeverityHigh:
		s.High += n
	case match.SeverityMedium:
		s.Medium += n
	case match.SeverityLow, match.SeverityNone:
		s.Low += n
	default:
		s.Unknown += n
	}
	if f.Status == match.StatusFixed {
		s.Fixable += n
	}
}

// Record is what the store holds for one digest.
type Record struct {
	Digest digest.Digest
	Scan   Scan
	// Summary and Report are set once a scan has succeeded; a later scan
	// in progress or failed keeps the last report.
	Summary Summary
	Report  *match.Report // nil unless asked for
	// Version increases with every report stored for the digest, so a
	// writer can tell whether the report it read is still the newest.
	Version int64
}

// HasReport reports whether a scan of the digest ever succeeded.
func (r *Record) HasReport() bool { return r.Version > 0 }

// Store keeps scan records. Implementations are safe for concurrent use.
type Store interface {
	// SetScan records the state of a digest's scan (pending, running,
	// failed), keeping its last report.
	SetScan(ctx context.Context, d digest.Digest, s Scan) error
	// MarkPending records that a scan of d was queued at queuedAt, unless
	// a scan started at or after queuedAt already (the job got there
	// first: its state is newer than "pending").
	MarkPending(ctx context.Context, d digest.Digest, queuedAt time.Time) error
	// Put stores a successful scan's report with the lookup keys of its
	// inventory (vulndb.Key of each match.Lookups entry), replacing the
	// digest's previous report and keys, in one transaction. When
	// ifVersion is not negative, Put stores nothing and returns
	// ErrConflict unless the stored version is still ifVersion (a
	// re-match based on a report that a newer scan has since replaced
	// must not overwrite it).
	Put(ctx context.Context, d digest.Digest, s Scan, r *match.Report, keys []string, ifVersion int64) error
	// StoreRematches stores re-matched reports in one transaction: their
	// findings, summaries and scan states, leaving inventories and lookup
	// keys as they are (a re-match reads no image, so neither changes).
	// A report whose stored version is no longer the IfVersion it was
	// read at is skipped. It returns the digests stored.
	StoreRematches(ctx context.Context, rs []Rematched) ([]digest.Digest, error)
	// RematchInputs returns what re-matching the reports of ds needs, in
	// one read: their inventories, summaries, the identities of their
	// findings and the findings as stored (not decoded). Digests without
	// a report are left out.
	RematchInputs(ctx context.Context, ds []digest.Digest) ([]RematchInput, error)
	// Get returns the digest's record, with its Report decoded when
	// withReport is set, or ErrNotFound.
	Get(ctx context.Context, d digest.Digest, withReport bool) (*Record, error)
	// Records returns the records (without reports) of the digests that
	// have one, for listings.
	Records(ctx context.Context, ds []digest.Digest) (map[digest.Digest]*Record, error)
	// Affected returns the digests of stored reports whose inventories
	// look up at least one of keys, each once, in digest order.
	Affected(ctx context.Context, keys []string) ([]digest.Digest, error)
	// AffectedEcosystems returns the digests of stored reports whose
	// inventories look up at least one key in any of ecosystems (as
	// vulndb.Key normalises them), each once, in digest order: those a
	// database that gained or lost an ecosystem's records can change.
	AffectedEcosystems(ctx context.Context, ecosystems []string) ([]digest.Digest, error)
	// Digests returns up to n digests that have a stored report, after
	// the digest given, in order.
	Digests(ctx context.Context, after digest.Digest, n int) ([]digest.Digest, error)
	// Delete forgets a digest's record and its keys.
	Delete(ctx context.Context, d digest.Digest) error
	// Vulnerable returns the digests whose stored report has a finding
	// naming id as its primary id or an alias (case-insensitively), in
	// digest order: which images an advisory affects, answered from an
	// index, without decoding a report. It is exact even while the index
	// is behind (IndexVulnerabilities).
	Vulnerable(ctx context.Context, id string) ([]digest.Digest, error)
	// IndexVulnerabilities brings the vulnerability index up to date for
	// every report whose index is behind its findings, and returns how
	// many it indexed. A store may leave the index of re-matched reports
	// to it, to keep re-matches fast.
	IndexVulnerabilities(ctx context.Context) (int, error)
	Close() error
}

// RematchInput is a stored report as a re-match reads it.
type RematchInput struct {
	Digest    digest.Digest
	Scan      Scan
	Version   int64
	Inventory inventory.Inventory
	// Findings identify the stored findings: a package and the ids of
	// one flaw, for telling which findings a re-match adds and which
	// package each belongs to.
	Findings []FindingKey
	// Summary is the stored report's.
	Summary Summary
	// Results are the stored findings and warnings as the store encoded
	// them (Codec.EncodeRest), for a delta re-match to keep findings
	// without decoding them.
	Results []byte
}

// FindingKey identifies one finding: the package (its purl, else its
// ecosystem, name and version) and every id of the flaw.
type FindingKey struct {
	Package string
	IDs     []string
}

// KeyOf returns f's key.
func KeyOf(f *match.Finding) FindingKey {
	return FindingKey{Package: PackageKey(&f.Package), IDs: f.IDs()}
}

// FindingIDs lists every id and alias r's findings name.
func FindingIDs(r *match.Report) []string {
	var ids []string
	for i := range r.Findings {
		ids = append(ids, r.Findings[i].ID)
		ids = append(ids, r.Findings[i].Aliases...)
	}
	return ids
}

// PackageKey identifies a package across reports.
func PackageKey(p *inventory.Package) string {
	if p.PURL != "" {
		return p.PURL
	}
	return string(p.Ecosystem) + "\x00" + p.Name + "\x00" + p.Version
}

// Rematched is a stored report matched again against a newer database.
type Rematched struct {
	Digest    digest.Digest
	Scan      Scan
	Report    *match.Report
	IfVersion int64
	// Kept, when not nil, says the re-match was a delta
	// (scan.Engine.MatchDelta): Report's findings are those of the
	// packages matched again, and Kept says how they interleave with the
	// findings of Prev, which the store keeps as they are encoded.
	Kept []match.Piece
	// Prev is the input the re-match read (required with Kept): a store
	// may write only what changed since.
	Prev *RematchInput
	// Summary is set by StoreRematches to the summary stored.
	Summary Summary
}

// ErrConflict is returned by Put when the stored version moved on.
var ErrConflict = errors.New("scan record changed since it was read")
