package vulndb

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Diff is what changed from one database to the next.
type Diff struct {
	// Keys are the index keys (Key(ecosystem, name)) whose records
	// differ: a record added, changed or withdrawn for that package, or
	// the package's entry gone. Only stored inventories that look up one
	// of these keys can have different findings under the new database.
	Keys []string
	// Added, Changed and Removed count records by id.
	Added, Changed, Removed int
}

// Compare walks the indexes and records of two databases side by side, in
// key order, and returns what differs. It reads each database once, never
// decoding a record.
func Compare(ctx context.Context, old, cur *DB) (*Diff, error) {
	d := &Diff{}
	err := old.bdb.View(func(otx *bolt.Tx) error {
		return cur.bdb.View(func(ctx2 *bolt.Tx) error {
			if err := mergeWalk(ctx, otx.Bucket(bucketIndex), ctx2.Bucket(bucketIndex), func(k []byte, o, c []byte) {
				if o == nil || c == nil || !bytes.Equal(o, c) {
					d.Keys = append(d.Keys, string(k))
				}
			}); err != nil {
				return err
			}
			return mergeWalk(ctx, otx.Bucket(bucketRecords), ctx2.Bucket(bucketRecords), func(_ []byte, o, c []byte) {
				switch {
				case o == nil:
					d.Added++
				case c == nil:
					d.Removed++
				case !bytes.Equal(o, c):
					d.Changed++
				}
			})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("compare vulnerability databases: %w", err)
	}
	return d, nil
}

// mergeWalk calls fn for every key of a or b, in order, with its value in
// each (nil where absent).
func mergeWalk(ctx context.Context, a, b *bolt.Bucket, fn func(k, va, vb []byte)) error {
	ca, cb := a.Cursor(), b.Cursor()
	ka, va := ca.First()
	kb, vb := cb.First()
	for n := 0; ka != nil || kb != nil; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		switch c := compareKeys(ka, kb); {
		case c < 0:
			fn(ka, va, nil)
			ka, va = ca.Next()
		case c > 0:
			fn(kb, nil, vb)
			kb, vb = cb.Next()
		default:
			fn(ka, va, vb)
			ka, va = ca.Next()
			kb, vb = cb.Next()
		}
	}
	return nil
}

// compareKeys orders keys as bbolt does, with nil (an exhausted cursor)
// after every key.
func compareKeys(a, b []byte) int {
	switch {
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return bytes.Compare(a, b)
}
