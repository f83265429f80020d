package reports

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
)

// RecordColumns are the columns of a scan_reports row that ScanRecord
// reads, in its order; the SQLite and PostgreSQL stores keep the table
// alike, times as Unix nanoseconds (Nanos) and the summary as JSON.
const RecordColumns = `digest, status, started_at, finished_at, db_updated_at, error, summary, version`

// ScanRecord reads a row of RecordColumns, followed with withReport by
// the three encoded parts of the report (inventory, results,
// image_results), which it returns for the store to decode.
func ScanRecord(row interface{ Scan(...any) error }, withReport bool) (*Record, [3][]byte, error) {
	var (
		rec                                   Record
		d, status, errText, summary           string
		started, finished, dbUpdated, version int64
		blobs                                 [3][]byte
		dest                                  = []any{&d, &status, &started, &finished, &dbUpdated, &errText, &summary, &version}
	)
	if withReport {
		dest = append(dest, &blobs[0], &blobs[1], &blobs[2])
	}
	if err := row.Scan(dest...); err != nil {
		return nil, blobs, err
	}
	rec.Digest = digest.Digest(d)
	rec.Scan = Scan{Status: Status(status), StartedAt: FromNanos(started), FinishedAt: FromNanos(finished),
		DBUpdatedAt: FromNanos(dbUpdated), Error: errText}
	rec.Version = version
	if err := json.Unmarshal([]byte(summary), &rec.Summary); err != nil {
		return nil, blobs, fmt.Errorf("summary of %s: %w", d, err)
	}
	return &rec, blobs, nil
}

// Nanos is t as the stores keep it: Unix nanoseconds, 0 for none.
func Nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// FromNanos is the time Nanos kept.
func FromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
