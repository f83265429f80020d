package rpm

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// go-rpmdb (v0.1.1) reads Berkeley DB and ndb files in a goroutine of its
// own that trusts the file: an out-of-range offset panics there (beyond any
// recover of ours), an overflow chain that loops or meets a page of the
// wrong type spins forever, an ndb blob length allocates whatever it says
// and a bad ndb slot is printed to standard output. Every image is
// untrusted, so checkStructure walks the same structures first, with
// bounds, and refuses a database that would take the library down one of
// those paths. SQLite files go to SQLite, which is built for damaged input.

var errCorrupt = errors.New("corrupt rpm database")

const (
	bdbHashMagic    = 0x00061561
	bdbPageHeader   = 26
	bdbHashPage     = 13
	bdbHashPageOld  = 2 // unsorted hash pages, before Berkeley DB 4.6
	bdbOverflowPage = 7
	bdbHashOffPage  = 3 // an item stored on overflow pages
	bdbOffPageEntry = 12

	ndbHeaderMagic  = 'R' | 'p'<<8 | 'm'<<16 | 'P'<<24
	ndbSlotMagic    = 'S' | 'l'<<8 | 'o'<<16 | 't'<<24
	ndbBlobMagic    = 'B' | 'l'<<8 | 'b'<<16 | 'S'<<24
	ndbHeaderSize   = 32
	ndbSlotSize     = 16
	ndbSlotsPerPage = 4096 / ndbSlotSize
	ndbMaxSlotPages = 2048
	ndbBlockSize    = 16
)

var sqliteMagic = []byte("SQLite format 3\x00")

// checkStructure returns an error wrapping errCorrupt when the database in
// r (size bytes, also at path) would make go-rpmdb panic, hang, print or
// over-allocate.
func checkStructure(r io.ReaderAt, size int64, path string) error {
	head := make([]byte, 512)
	n, err := r.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return err
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, sqliteMagic):
		return checkSQLite(path)
	case len(head) >= 4 && binary.LittleEndian.Uint32(head) == ndbHeaderMagic:
		return checkNDB(r, size)
	case len(head) >= 36 && binary.LittleEndian.Uint32(head[12:]) == bdbHashMagic:
		return checkBDB(r, size, binary.LittleEndian, head)
	case len(head) >= 36 && binary.BigEndian.Uint32(head[12:]) == bdbHashMagic:
		return checkBDB(r, size, binary.BigEndian, head)
	}
	return fmt.Errorf("%w: neither SQLite, ndb nor a Berkeley DB hash", errCorrupt)
}

func checkBDB(r io.ReaderAt, size int64, order binary.ByteOrder, meta []byte) error {
	pageSize := int64(order.Uint32(meta[20:]))
	lastPage := int64(order.Uint32(meta[32:]))
	if pageSize < 512 || pageSize > 65536 || pageSize&(pageSize-1) != 0 {
		return fmt.Errorf("%w: page size %d", errCorrupt, pageSize)
	}
	if (lastPage+1)*pageSize > size {
		return fmt.Errorf("%w: %d pages of %d bytes do not fit in %d bytes", errCorrupt, lastPage+1, pageSize, size)
	}
	page := make([]byte, pageSize)
	overflow := make([]byte, pageSize)
	used := map[int64]bool{} // overflow pages already part of an item
	var item []byte
	for p := int64(0); p <= lastPage; p++ {
		if _, err := r.ReadAt(page, p*pageSize); err != nil {
			return fmt.Errorf("%w: page %d: %v", errCorrupt, p, err)
		}
		if typ := page[25]; typ != bdbHashPage && typ != bdbHashPageOld {
			continue
		}
		entries := int64(order.Uint16(page[20:]))
		// The library does this arithmetic in uint16: keep it from wrapping.
		if entries%2 != 0 || bdbPageHeader+entries*2 > min(pageSize, 0xffff) {
			return fmt.Errorf("%w: page %d holds %d entries", errCorrupt, p, entries)
		}
		// Entries are key/value offset pairs; the library reads values.
		for i := int64(1); i < entries; i += 2 {
			off := int64(order.Uint16(page[bdbPageHeader+i*2:]))
			if off >= pageSize {
				return fmt.Errorf("%w: page %d: item offset %d", errCorrupt, p, off)
			}
			if page[off] != bdbHashOffPage {
				continue
			}
			if off+bdbOffPageEntry > min(pageSize, 0xffff) {
				return fmt.Errorf("%w: page %d: item at %d overruns the page", errCorrupt, p, off)
			}
			item = item[:0]
			for next := int64(order.Uint32(page[off+4:])); next != 0; {
				if next > lastPage || used[next] {
					return fmt.Errorf("%w: overflow chain from page %d reaches page %d twice or past the end", errCorrupt, p, next)
				}
				used[next] = true
				if _, err := r.ReadAt(overflow, next*pageSize); err != nil {
					return fmt.Errorf("%w: page %d: %v", errCorrupt, next, err)
				}
				if overflow[25] != bdbOverflowPage {
					return fmt.Errorf("%w: page %d in an overflow chain is of type %d", errCorrupt, next, overflow[25])
				}
				following := int64(order.Uint32(overflow[16:]))
				end := pageSize
				if following == 0 {
					end = bdbPageHeader + int64(order.Uint16(overflow[22:]))
					if end > pageSize {
						return fmt.Errorf("%w: page %d: item length overruns the page", errCorrupt, next)
					}
				}
				item = append(item, overflow[bdbPageHeader:end]...)
				next = following
			}
			if err := checkHeader(item); err != nil {
				return fmt.Errorf("%w: item on page %d: %v", errCorrupt, p, err)
			}
		}
	}
	return nil
}

func checkNDB(r io.ReaderAt, size int64) error {
	hdr := make([]byte, ndbHeaderSize)
	if _, err := r.ReadAt(hdr, 0); err != nil {
		return fmt.Errorf("%w: header: %v", errCorrupt, err)
	}
	slotPages := int64(binary.LittleEndian.Uint32(hdr[12:]))
	if slotPages == 0 || slotPages > ndbMaxSlotPages {
		return fmt.Errorf("%w: %d slot pages", errCorrupt, slotPages)
	}
	nslots := slotPages*ndbSlotsPerPage - 2 // the header takes the first two
	if ndbHeaderSize+nslots*ndbSlotSize > size {
		return fmt.Errorf("%w: %d slots do not fit in %d bytes", errCorrupt, nslots, size)
	}
	slots := make([]byte, nslots*ndbSlotSize)
	if _, err := r.ReadAt(slots, ndbHeaderSize); err != nil {
		return fmt.Errorf("%w: slots: %v", errCorrupt, err)
	}
	blob := make([]byte, 16)
	for i := int64(0); i < nslots; i++ {
		s := slots[i*ndbSlotSize:]
		if binary.LittleEndian.Uint32(s) != ndbSlotMagic {
			return fmt.Errorf("%w: slot %d has a bad magic", errCorrupt, i)
		}
		pkg := binary.LittleEndian.Uint32(s[4:])
		if pkg == 0 {
			continue
		}
		off := int64(binary.LittleEndian.Uint32(s[8:])) * ndbBlockSize
		if off+16 > size {
			return fmt.Errorf("%w: slot %d points past the end", errCorrupt, i)
		}
		if _, err := r.ReadAt(blob, off); err != nil {
			return fmt.Errorf("%w: blob of slot %d: %v", errCorrupt, i, err)
		}
		if binary.LittleEndian.Uint32(blob) != ndbBlobMagic || binary.LittleEndian.Uint32(blob[4:]) != pkg {
			return fmt.Errorf("%w: slot %d: no blob for package %d", errCorrupt, i, pkg)
		}
		blobLen := int64(binary.LittleEndian.Uint32(blob[12:]))
		if off+16+blobLen > size {
			return fmt.Errorf("%w: blob of package %d overruns the file", errCorrupt, pkg)
		}
		header := make([]byte, blobLen)
		if _, err := r.ReadAt(header, off+16); err != nil {
			return fmt.Errorf("%w: blob of package %d: %v", errCorrupt, pkg, err)
		}
		if err := checkHeader(header); err != nil {
			return fmt.Errorf("%w: package %d: %v", errCorrupt, pkg, err)
		}
	}
	return nil
}

// checkSQLite checks the header blobs of an SQLite rpmdb; SQLite itself
// copes with a damaged file.
func checkSQLite(path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return fmt.Errorf("%w: %v", errCorrupt, err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT hnum, blob FROM Packages")
	if err != nil {
		return fmt.Errorf("%w: %v", errCorrupt, err)
	}
	defer rows.Close()
	for rows.Next() {
		var hnum int64
		var blob []byte
		if err := rows.Scan(&hnum, &blob); err != nil {
			return fmt.Errorf("%w: %v", errCorrupt, err)
		}
		if err := checkHeader(blob); err != nil {
			return fmt.Errorf("%w: package %d: %v", errCorrupt, hnum, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%w: %v", errCorrupt, err)
	}
	return nil
}

// rpm header value types whose length go-rpmdb finds by scanning strings.
const (
	rpmString      = 6
	rpmStringArray = 8
	rpmI18NString  = 9
)

// checkHeader checks an rpm header blob (big-endian index count and data
// length, then 16-byte index entries, then data) where go-rpmdb trusts it:
// it allocates the index before checking the count against the blob, and
// scans "count" strings even when the data holds far fewer.
func checkHeader(blob []byte) error {
	if len(blob) < 8 {
		return errors.New("header shorter than its lengths")
	}
	il := int64(int32(binary.BigEndian.Uint32(blob)))
	dl := int64(int32(binary.BigEndian.Uint32(blob[4:])))
	if il < 1 || dl < 0 || 8+il*16+dl > int64(len(blob)) {
		return fmt.Errorf("header of %d bytes claims %d entries and %d bytes of data", len(blob), il, dl)
	}
	for i := int64(0); i < il; i++ {
		e := blob[8+i*16:]
		typ, count := binary.BigEndian.Uint32(e[4:]), int64(binary.BigEndian.Uint32(e[12:]))
		if (typ == rpmString || typ == rpmStringArray || typ == rpmI18NString) && count > dl {
			return fmt.Errorf("entry %d claims %d strings in %d bytes", i, count, dl)
		}
	}
	return nil
}
