package vulndb

import (
	"bytes"
	"encoding/binary"
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
// Everything goes to a scratch file first, in batches sorted in memory: the
// full records by id, and one posting per (package key, record) holding the
// record trimmed to that package. Finish then copies both, in key order,
// into the final file, joining each package's postings into its index value.
// Memory thus stays bounded by one batch whatever the size of the feeds, and
// the final file's pages are filled completely.
type Builder struct {
	path    string
	scratch string
	bdb     *bolt.DB
	zenc    *zstd.Encoder

	seen     map[string]struct{}
	ecos     map[string]int
	batch    []kv
	bytes    int
	seq      uint64
	sources  []*sourceStats
	total    int
	packages int
}

// kv is one pending write to the scratch file.
type kv struct {
	bucket     []byte
	key, value []byte
}

type sourceStats struct {
	SourceInfo
	reasons map[string]*SkipReason
}

// batchBytes bounds what is held in memory between writes to the scratch
// file.
const batchBytes = 8 << 20

var bucketPostings = []byte("postings")

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
	b.put(bucketRecords, []byte(v.ID), b.zenc.EncodeAll(full, nil))

	counted := map[string]bool{}
	slim := *v
	slim.Details = ""
	for _, k := range keys {
		idx := byKey[k]
		eco, _, _ := strings.Cut(k, "\x00")
		slim.Affected = make([]osv.Affected, len(idx))
		for j, i := range idx {
			slim.Affected[j] = v.Affected[i]
			// As looked up: a matcher comparing ecosystems finds its own
			// ("Ubuntu:22.04", not osv.dev's "Ubuntu:22.04:LTS").
			slim.Affected[j].Package.Ecosystem = eco
		}
		var n arenaSizes
		n.count(&slim)
		b.put(bucketPostings, postingKey(k, b.seq), encodeRecord(appendHeader(nil, n), &slim))
		b.seq++
		if !counted[eco] {
			counted[eco] = true
			b.ecos[eco]++
		}
	}
	if b.bytes >= batchBytes {
		return b.flush()
	}
	return nil
}

// postingKey orders a package's postings together, in import order. Keys
// hold no NUL besides the one between ecosystem and name (checkAffected
// makes sure), so one package's postings are never interleaved with
// another's.
func postingKey(key string, seq uint64) []byte {
	pk := make([]byte, 0, len(key)+9)
	pk = append(pk, key...)
	pk = append(pk, 0)
	return binary.BigEndian.AppendUint64(pk, seq)
}

func (b *Builder) put(bucket, key, value []byte) {
	b.batch = append(b.batch, kv{bucket, key, value})
	b.bytes += len(key) + len(value)
}

func openScratch(path string) (*bolt.DB, error) {
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true})
	if err != nil {
		return nil, err
	}
	// Nothing in the scratch file needs to survive a crash.
	bdb.NoSync = true
	err = bdb.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketRecords, bucketPostings} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		bdb.Close()
		os.Remove(path)
		return nil, err
	}
	return bdb, nil
}

func (b *Builder) flush() error {
	if len(b.batch) == 0 {
		return nil
	}
	// bbolt inserts sorted keys fastest.
	sort.Slice(b.batch, func(i, j int) bool {
		if c := bytes.Compare(b.batch[i].bucket, b.batch[j].bucket); c != 0 {
			return c < 0
		}
		return bytes.Compare(b.batch[i].key, b.batch[j].key) < 0
	})
	err := b.bdb.Update(func(tx *bolt.Tx) error {
		for _, e := range b.batch {
			if err := tx.Bucket(e.bucket).Put(e.key, e.value); err != nil {
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
	if err := b.flush(); err != nil {
		return nil, err
	}
	// The final file keeps its freelist, so any bbolt tool opens it as is.
	out, err := bolt.Open(b.path, 0o644, &bolt.Options{Timeout: time.Second})
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
	err := b.bdb.View(func(src *bolt.Tx) error {
		if err := copySorted(out, bucketRecords, src.Bucket(bucketRecords).Cursor(), nil); err != nil {
			return err
		}
		return copySorted(out, bucketIndex, src.Bucket(bucketPostings).Cursor(), b.joinPostings)
	})
	if err != nil {
		return err
	}
	meta, err := json.Marshal(b.info(updated))
	if err != nil {
		return err
	}
	return out.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return bk.Put(keyInfo, meta)
	})
}

// copySorted writes the entries under cursor c, already in key order, to a
// new bucket of out, with pages filled completely. With join set, runs of
// entries are first merged into one: join consumes entries from c and
// returns the key and value to write.
func copySorted(out *bolt.DB, bucket []byte, c *bolt.Cursor, join func(c *bolt.Cursor, k, v []byte) (key, value, next, nextV []byte)) error {
	if err := out.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
		return err
	}
	// Chunks keep each transaction's dirty pages, and so memory, bounded.
	const chunkBytes = 32 << 20
	k, v := c.First()
	for k != nil {
		err := out.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(bucket)
			bk.FillPercent = 1
			written := 0
			for k != nil && written < chunkBytes {
				key, value := k, v
				if join != nil {
					key, value, k, v = join(c, k, v)
				} else {
					k, v = c.Next()
				}
				// The scratch file's memory is valid only in its
				// transaction, and bbolt keeps what it is given until
				// the commit: copy.
				if err := bk.Put(bytes.Clone(key), bytes.Clone(value)); err != nil {
					return err
				}
				written += len(key) + len(value)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// joinPostings merges the postings of one package, starting at (k, v), into
// its index value, and returns the entry after them.
func (b *Builder) joinPostings(c *bolt.Cursor, k, v []byte) (key, value, next, nextV []byte) {
	key = bytes.Clone(k[:len(k)-9])
	var n arenaSizes
	var body []byte
	for ; k != nil && len(k) == len(key)+9 && bytes.HasPrefix(k, key); k, v = c.Next() {
		// A posting is a one-record index value: version, counts, record.
		pos := 1
		for _, p := range []*int{&n.recs, &n.strs, &n.sevs, &n.affs, &n.ranges, &n.events, &n.refs} {
			c, w := binary.Uvarint(v[pos:])
			*p += int(c)
			pos += w
		}
		body = append(body, v[pos:]...)
	}
	b.packages++
	return key, append(appendHeader(make([]byte, 0, 16+len(body)), n), body...), k, v
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
