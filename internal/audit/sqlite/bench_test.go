package sqlite_test

import (
	"context"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/audit/audittest"
	"berth.dev/berth/internal/audit/sqlite"
)

// BenchmarkRecord is the cost of auditing one pull, end to end: queued by
// concurrent requests, sealed, batched and stored, the tip anchored in an
// anchor file as the server does. "same" repeats one pull
// (which the writer folds into counted entries), "distinct" makes every
// pull differ (one row each, the worst case).
func BenchmarkRecord(b *testing.B) {
	b.Run("same", func(b *testing.B) { benchRecord(b, false) })
	b.Run("distinct", func(b *testing.B) { benchRecord(b, true) })
}

func benchRecord(b *testing.B, distinct bool) {
	ctx := context.Background()
	dir := b.TempDir()
	s, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l, err := audit.Open(ctx, s, audittest.Key(b), audit.Options{AnchorFile: filepath.Join(dir, audit.AnchorFileName)})
	if err != nil {
		b.Fatal(err)
	}
	e := audit.Entry{Actor: "robot$ci", SourceIP: "10.1.2.3", Action: audit.ActionPull, Project: "team-a",
		Repository: "team-a/app", Digest: "sha256:64eaaeb62fd8ff8ad556ebf319090dbe028295447483ab848306e2ecd04aa959", Detail: "tag v1"}
	b.ReportAllocs()
	b.ResetTimer()
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		e := e
		for pb.Next() {
			if distinct {
				e.Detail = strconv.FormatInt(n.Add(1), 10)
			}
			if err := l.Record(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
}
