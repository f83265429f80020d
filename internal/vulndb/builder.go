package vulndb

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	bolt "go.etcd.io/bbolt"

	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/vulndb/source"
)

// Builder writes a new DB file from the records of one or more sources.
// It is not safe for concurrent use: sources are loaded one after another.
//
// Records arrive in feed order, so they go to a scratch file first, whose
// pages end up half full; Finish copies them in key order into the final
// file (bbolt.Compact fills pages completely) and appends the index, which is
// kept in memory until then because every record adds to several keys.
type Builder struct {
	path    string
	scratch string
	bdb     *bolt.DB
	zenc    *zstd.Encoder

	seen     map[string]struct{}
	pending  map[string]*pendingKey
	ecos     map[string]int
	batch    []recordBlob
	bytes    int
	sources  []*sourceStats
	total    int
	packages int
}

type pendingKey struct {
	n    arenaSizes
	body []byte
}

type recordBlob struct {
	id   string
	data []byte
}

type sourceStats struct {
	SourceInfo
	reasons map[string]*SkipReason
}

// batchBytes bounds the full records held in memory between writes.
const batchBytes = 8 << 20

// maxExamples is how many record ids status shows per skip reason.
const maxExamples = 5

// NewBuilder creates a DB file at path, which must not exist yet.
func NewBuilder(path string) (*Builder, error) {
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("build %s: file exists", path)
	}
	scratch := path + ".scratch"
	bdb, err := openScratch(scratch)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", path, err)
	}
	zenc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		bdb.Close()
		os.Remove(scratch)
		return nil, err
	}
	return &Builder{
		path:    path,
		scratch: scratch,
		bdb:     bdb,
		zenc:    zenc,
		seen:    map[string]struct{}{},
		pending: map[string]*pendingKey{},
		ecos:    map[string]int{},
	}, nil
}

// Sink returns the sink one source's records go to; its counts appear under
// name in the DB's Info.
func (b *Builder) Sink(name string) source.Sink {
	s := &sourceStats{SourceInfo: SourceInfo{Name: name}, reasons: map[string]*SkipReason{}}
	b.sources = append(b.sources, s)
	return &sink{b: b, s: s}
}

type sink struct {
	b *Builder
	s *sourceStats
}

func (k *sink) Skip(id, reason string) {
	k.s.Skipped++
	k.s.skip(id, reason)
}

func (s *sourceStats) skip(id, reason string) {
	r := s.reasons[reason]
	if r == nil {
		r = &SkipReason{Reason: reason}
		s.reasons[reason] = r
	}
	r.Count++
	if id != "" && len(r.Examples) < maxExamples {
		r.Examples = append(r.Examples, id)
	}
}

func (k *sink) Add(v *osv.Vulnerability) error { return k.b.add(k.s, v) }

func (b *Builder) add(s *sourceStats, v *osv.Vulnerability) error {
	v.ID = strings.TrimSpace(v.ID)
	switch {
	case v.ID == "":
		s.Skipped++
		s.skip("", "record without id")
		return nil
	case !v.Withdrawn.IsZero():
		s.Skipped++
		s.skip(v.ID, "withdrawn")
		return nil
	}
	if _, dup := b.seen[v.ID]; dup {
		// The feed repeats a record in every ecosystem zip it affects; the
		// first copy was indexed under all of its packages already.
		s.Duplicates++
		return nil
	}

	// Group the record's usable affected entries by index key; note why the
	// others cannot be used.
	var keys []string
	byKey := map[string][]int{}
	var reasons []string
	for i := range v.Affected {
		a := &v.Affected[i]
		if err := checkAffected(a); err != nil {
			reason := err.Error()
			if ie, ok := err.(*invalidError); ok {
				reason = ie.Reason
			}
			if !slices.Contains(reasons, reason) {
				reasons = append(reasons, reason)
			}
			continue
		}
		k := Key(a.Package.Ecosystem, a.Package.Name)
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], i)
	}
	for _, r := range reasons {
		s.skip(v.ID, r)
	}
	if len(keys) == 0 {
		s.Skipped++
		if len(v.Affected) == 0 {
			s.skip(v.ID, "no affected packages")
		}
		return nil
	}

	b.seen[v.ID] = struct{}{}
	s.Records++
	b.total++
	full, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("record %s: %w", v.ID, err)
	}
	blob := b.zenc.EncodeAll(full, nil)
	b.batch = append(b.batch, recordBlob{id: v.ID, data: blob})
	b.bytes += len(blob)
	if b.bytes >= batchBytes {
		if err := b.flushRecords(); err != nil {
			return err
		}
	}

	counted := map[string]bool{}
	slim := *v
	slim.Details = ""
	for _, k := range keys {
		idx := byKey[k]
		slim.Affected = make([]osv.Affected, len(idx))
		for j, i := range idx {
			slim.Affected[j] = v.Affected[i]
		}
		p := b.pending[k]
		if p == nil {
			p = &pendingKey{}
			b.pending[k] = p
		}
		p.n.count(&slim)
		p.body = encodeRecord(p.body, &slim)
		eco, _, _ := strings.Cut(k, "\x00")
		if !counted[eco] {
			counted[eco] = true
			b.ecos[eco]++
		}
	}
	return nil
}

func openScratch(path string) (*bolt.DB, error) {
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true})
	if err != nil {
		return nil, err
	}
	// Nothing in the scratch file needs to survive a crash.
	bdb.NoSync = true
	err = bdb.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket(bucketRecords)
		return err
	})
	if err != nil {
		bdb.Close()
		os.Remove(path)
		return nil, err
	}
	return bdb, nil
}

func (b *Builder) flushRecords() error {
	if len(b.batch) == 0 {
		return nil
	}
	sort.Slice(b.batch, func(i, j int) bool { return b.batch[i].id < b.batch[j].id })
	err := b.bdb.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketRecords)
		for _, r := range b.batch {
			if err := bk.Put([]byte(r.id), r.data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("build %s: %w", b.path, err)
	}
	b.batch = b.batch[:0]
	b.bytes = 0
	return nil
}

// Finish writes the final file: the records in key order, the index and the
// DB's Info; it syncs and closes it. updated is the time the update that
// built it succeeded.
func (b *Builder) Finish(updated time.Time) (*Info, error) {
	defer b.zenc.Close()
	defer os.Remove(b.scratch)
	info, err := b.finish(updated)
	b.bdb.Close()
	if err != nil {
		os.Remove(b.path)
		return nil, fmt.Errorf("build %s: %w", b.path, err)
	}
	return info, nil
}

func (b *Builder) finish(updated time.Time) (*Info, error) {
	if err := b.flushRecords(); err != nil {
		return nil, err
	}
	out, err := bolt.Open(b.path, 0o644, &bolt.Options{Timeout: time.Second, NoFreelistSync: true})
	if err != nil {
		return nil, err
	}
	// One sync at the end instead of one per transaction and growth step; a
	// file that was not finished is never installed. A small allocation step
	// keeps the file from ending with up to 16 MiB of unused space.
	out.NoSync = true
	out.NoGrowSync = true
	out.AllocSize = 1 << 20
	err = b.writeFinal(out, updated)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return b.info(updated), nil
}

func (b *Builder) writeFinal(out *bolt.DB, updated time.Time) error {
	if err := bolt.Compact(out, b.bdb, 64<<20); err != nil {
		return err
	}
	keys := make([]string, 0, len(b.pending))
	for k := range b.pending {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.packages = len(keys)
	// Sorted keys fill pages completely (FillPercent 1), which keeps the
	// file small and lookups shallow; chunks keep each transaction's dirty
	// pages bounded.
	const chunk = 20000
	for start := 0; start < len(keys); start += chunk {
		end := min(start+chunk, len(keys))
		err := out.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists(bucketIndex)
			if err != nil {
				return err
			}
			bk.FillPercent = 1
			for _, k := range keys[start:end] {
				p := b.pending[k]
				// bbolt keeps the value until the commit: no buffer reuse.
				val := appendHeader(make([]byte, 0, 16+len(p.body)), p.n)
				val = append(val, p.body...)
				if err := bk.Put([]byte(k), val); err != nil {
					return err
				}
				delete(b.pending, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	meta, err := json.Marshal(b.info(updated))
	if err != nil {
		return err
	}
	return out.Update(func(tx *bolt.Tx) error {
		// An import that yielded no record still makes a valid, empty DB.
		for _, name := range [][]byte{bucketIndex, bucketRecords} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		bk, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return bk.Put(keyInfo, meta)
	})
}

func (b *Builder) info(updated time.Time) *Info {
	info := &Info{
		SchemaVersion: SchemaVersion,
		UpdatedAt:     updated.UTC(),
		Records:       b.total,
		Packages:      b.packages,
		Ecosystems:    b.ecos,
	}
	for _, s := range b.sources {
		si := s.SourceInfo
		si.Reasons = nil
		for _, r := range s.reasons {
			si.Reasons = append(si.Reasons, *r)
		}
		sort.Slice(si.Reasons, func(i, j int) bool {
			if si.Reasons[i].Count != si.Reasons[j].Count {
				return si.Reasons[i].Count > si.Reasons[j].Count
			}
			return si.Reasons[i].Reason < si.Reasons[j].Reason
		})
		info.Sources = append(info.Sources, si)
	}
	return info
}

// Abort discards the files being built.
func (b *Builder) Abort() {
	b.zenc.Close()
	b.bdb.Close()
	os.Remove(b.scratch)
	os.Remove(b.path)
}
