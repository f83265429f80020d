package rpm

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bdbItem finds, in the Berkeley DB fixture, the first hash page whose
// first value is an overflow item, and that item's first overflow page.
func bdbItem(t *testing.T, db []byte) (hashPage, overflowPage int) {
	t.Helper()
	const ps = 512
	for p := 1; p*ps < len(db); p++ {
		page := db[p*ps : (p+1)*ps]
		if page[25] != bdbHashPage {
			continue
		}
		off := int(binary.LittleEndian.Uint16(page[bdbPageHeader+2:]))
		if page[off] == bdbHashOffPage {
			return p, int(binary.LittleEndian.Uint32(page[off+4:]))
		}
	}
	t.Fatal("no overflow item in the fixture")
	return
}

func TestCheckStructure(t *testing.T) {
	good := gunzipFile(t, "testdata/Packages.bdb.gz")
	hp, op := bdbItem(t, good)
	hdr := firstHeader(t)
	const ps = 512
	mutate := func(f func(db []byte)) []byte {
		db := bytes.Clone(good)
		f(db)
		return db
	}
	// lastOverflow follows the chain from op to its last page.
	lastOverflow := func(db []byte) int {
		p := op
		for next := int(binary.LittleEndian.Uint32(db[p*ps+16:])); next != 0; next = int(binary.LittleEndian.Uint32(db[p*ps+16:])) {
			p = next
		}
		return p
	}
	tests := []struct {
		name string
		db   []byte
		want string // "" for a database that passes
	}{
		{"real Berkeley DB", good, ""},
		{"real SQLite", fixture(t), ""},
		{"overflow chain loops", mutate(func(db []byte) {
			last := lastOverflow(db)
			binary.LittleEndian.PutUint32(db[last*ps+16:], uint32(op))
		}), "twice"},
		{"overflow chain meets a hash page", mutate(func(db []byte) {
			db[op*ps+25] = bdbHashPage
		}), "of type"},
		{"item offset past the page", mutate(func(db []byte) {
			binary.LittleEndian.PutUint16(db[hp*ps+bdbPageHeader+2:], 600)
		}), "item offset"},
		{"item overruns the page", mutate(func(db []byte) {
			binary.LittleEndian.PutUint16(db[hp*ps+bdbPageHeader+2:], ps-4)
			db[hp*ps+ps-4] = bdbHashOffPage
		}), "overruns"},
		{"too many entries", mutate(func(db []byte) {
			binary.LittleEndian.PutUint16(db[hp*ps+20:], 1000)
		}), "entries"},
		{"last overflow length overruns", mutate(func(db []byte) {
			binary.LittleEndian.PutUint16(db[lastOverflow(db)*ps+22:], ps)
		}), "item length"},
		{"pages past the end", good[:len(good)-ps], "do not fit"},
		{"garbage", bytes.Repeat([]byte{7}, 2048), "neither"},
		{"ndb with a bad slot", ndbFile(0x1234, 1, 256, hdr, uint32(len(hdr))), "bad magic"},
		{"ndb blob length beyond the file", ndbFile(ndbSlotMagic, 1, 256, hdr, 1<<30), "overruns"},
		{"ndb slot past the end", ndbFile(ndbSlotMagic, 1, 1<<20, hdr, uint32(len(hdr))), "past the end"},
		{"ndb", ndbFile(ndbSlotMagic, 1, 256, hdr, uint32(len(hdr))), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := checkStructure(bytes.NewReader(tt.db), int64(len(tt.db)))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, errCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want errCorrupt mentioning %q", err, tt.want)
			}
		})
	}
}

// firstHeader is the first rpm header blob of the SQLite fixture.
func firstHeader(t testing.TB) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rpmdb.sqlite")
	if err := os.WriteFile(p, gunzipFile(t, "testdata/rpmdb.sqlite.gz"), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var blob []byte
	if err := db.QueryRow("SELECT blob FROM Packages ORDER BY hnum LIMIT 1").Scan(&blob); err != nil {
		t.Fatal(err)
	}
	return blob
}

// sqliteWithHeader is the SQLite fixture with its first header replaced.
func sqliteWithHeader(t *testing.T, header []byte) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rpmdb.sqlite")
	if err := os.WriteFile(p, fixture(t), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE Packages SET blob = ? WHERE hnum = (SELECT min(hnum) FROM Packages)", header); err != nil {
		t.Fatal(err)
	}
	db.Close()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The ndb path end to end, on a database built around a real header.
func TestReadNDB(t *testing.T) {
	hdr := firstHeader(t)
	pkgs, warns, err := readDB(context.Background(), bytes.NewReader(ndbFile(ndbSlotMagic, 1, 256, hdr, uint32(len(hdr)))), "/var/lib/rpm/Packages.db")
	if err != nil || len(warns) != 0 || len(pkgs) != 1 || pkgs[0].Name == "" || pkgs[0].Locations[0] != "/var/lib/rpm/Packages.db" {
		t.Fatalf("%+v, %q, %v", pkgs, warns, err)
	}
}

// ndbFile builds an ndb database of one slot page whose first slot has
// the given magic and points at block blk, where a blob header claiming
// blobLen bytes is followed by header.
func ndbFile(slotMagic, pkg, blk uint32, header []byte, blobLen uint32) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	hdr := make([]byte, ndbHeaderSize)
	le.PutUint32(hdr, ndbHeaderMagic)
	le.PutUint32(hdr[12:], 1)
	b.Write(hdr)
	for i := 0; i < ndbSlotsPerPage-2; i++ {
		s := make([]byte, ndbSlotSize)
		le.PutUint32(s, ndbSlotMagic)
		if i == 0 {
			le.PutUint32(s, slotMagic)
			le.PutUint32(s[4:], pkg)
			le.PutUint32(s[8:], blk)
		}
		b.Write(s)
	}
	for int64(b.Len()) < int64(blk)*ndbBlockSize && b.Len() < 8192 {
		b.WriteByte(0)
	}
	if int64(b.Len()) == int64(blk)*ndbBlockSize {
		blob := make([]byte, 16)
		le.PutUint32(blob, ndbBlobMagic)
		le.PutUint32(blob[4:], pkg)
		le.PutUint32(blob[12:], blobLen)
		b.Write(blob)
		b.Write(header)
	}
	return b.Bytes()
}

// FuzzReadDB feeds damaged databases through the whole read: whatever the
// bytes, it must return (packages or an error), never panic or hang.
func FuzzReadDB(f *testing.F) {
	f.Add(gunzipFile(f, "testdata/Packages.bdb.gz"))
	hdr := firstHeader(f)
	f.Add(ndbFile(ndbSlotMagic, 1, 256, hdr, uint32(len(hdr))))
	f.Fuzz(func(t *testing.T, db []byte) {
		readDB(context.Background(), bytes.NewReader(db), "/x")
	})
}
