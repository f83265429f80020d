package rpm

import (
	"bytes"
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
// The header blobs inside are parseHeader's business.

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

// dbFormat is the storage format of an rpm database.
type dbFormat int

const (
	formatSQLite dbFormat = iota
	formatNDB
	formatBDB
)

// checkStructure tells the format of the database in r (size bytes) and
// returns an error wrapping errCorrupt when the database would make
// go-rpmdb's reader panic, hang, print or over-allocate.
func checkStructure(r io.ReaderAt, size int64) (dbFormat, error) {
	head := make([]byte, 512)
	n, err := r.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return 0, err
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, sqliteMagic):
		return formatSQLite, nil
	case len(head) >= 4 && binary.LittleEndian.Uint32(head) == ndbHeaderMagic:
		return formatNDB, checkNDB(r, size)
	case len(head) >= 36 && binary.LittleEndian.Uint32(head[12:]) == bdbHashMagic:
		return formatBDB, checkBDB(r, size, binary.LittleEndian, head)
	case len(head) >= 36 && binary.BigEndian.Uint32(head[12:]) == bdbHashMagic:
		return formatBDB, checkBDB(r, size, binary.BigEndian, head)
	}
	return 0, fmt.Errorf("%w: neither SQLite, ndb nor a Berkeley DB hash", errCorrupt)
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
				if following == 0 && bdbPageHeader+int64(order.Uint16(overflow[22:])) > pageSize {
					return fmt.Errorf("%w: page %d: item length overruns the page", errCorrupt, next)
				}
				next = following
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
	}
	return nil
}
