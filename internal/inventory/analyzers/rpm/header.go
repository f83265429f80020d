package rpm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// The header tags berth reads (rpmtag.h) and their value types.
const (
	tagName      = 1000
	tagVersion   = 1001
	tagRelease   = 1002
	tagEpoch     = 1003
	tagLicense   = 1014
	tagArch      = 1022
	tagSourceRPM = 1044

	typeInt32      = 4
	typeString     = 6
	typeI18NString = 9
)

// rpm's own sanity limits on a header (hdrchkTags, hdrchkData in
// header_internal.h).
const (
	maxHeaderEntries = 0xffff
	maxHeaderData    = 0xffffff
)

// header is what berth needs from one installed package's header.
type header struct {
	name, version, release, arch, license, sourceRPM string
	epoch                                            *int
}

// parseHeader reads one header blob as an rpm database stores it: the
// big-endian entry count and data length, the 16-byte index entries (tag,
// type, offset, count), then the data. Only the tags berth uses are
// decoded, each checked against the data's bounds, so a damaged blob is an
// error and never a panic; entries for other tags are not looked at.
//
// Hand-written rather than go-rpmdb's parser: that one is reachable only
// through RpmDB.ListPackages, which abandons its reader goroutine (and the
// database file) on the first bad header, and it panics on some damaged
// blobs. Seven tags of a documented format are less code than guarding it.
func parseHeader(blob []byte) (header, error) {
	var h header
	if len(blob) < 8 {
		return h, errors.New("header shorter than its lengths")
	}
	il := int64(binary.BigEndian.Uint32(blob))
	dl := int64(binary.BigEndian.Uint32(blob[4:]))
	if il < 1 || il > maxHeaderEntries || dl > maxHeaderData || 8+il*16+dl > int64(len(blob)) {
		return h, fmt.Errorf("header of %d bytes claims %d entries and %d bytes of data", len(blob), il, dl)
	}
	index, data := blob[8:8+il*16], blob[8+il*16:8+il*16+dl]
	seen := map[uint32]bool{}
	for i := int64(0); i < il; i++ {
		e := index[i*16:]
		tag, typ := binary.BigEndian.Uint32(e), binary.BigEndian.Uint32(e[4:])
		off, count := int64(binary.BigEndian.Uint32(e[8:])), binary.BigEndian.Uint32(e[12:])
		var dst *string
		switch tag {
		case tagName:
			dst = &h.name
		case tagVersion:
			dst = &h.version
		case tagRelease:
			dst = &h.release
		case tagArch:
			dst = &h.arch
		case tagLicense:
			dst = &h.license
		case tagSourceRPM:
			dst = &h.sourceRPM
		case tagEpoch:
		default:
			continue
		}
		// rpm keeps the first entry of a tag; so do we.
		if seen[tag] {
			continue
		}
		seen[tag] = true
		if off >= dl || count == 0 {
			return h, fmt.Errorf("tag %d: offset %d and count %d do not fit %d bytes of data", tag, off, count, dl)
		}
		if tag == tagEpoch {
			if typ != typeInt32 || off+4 > dl {
				return h, fmt.Errorf("tag %d: epoch of type %d at offset %d", tag, typ, off)
			}
			epoch := int(int32(binary.BigEndian.Uint32(data[off:])))
			h.epoch = &epoch
			continue
		}
		// A translatable string is a list whose first entry is the C
		// locale's text.
		if typ != typeString && typ != typeI18NString {
			return h, fmt.Errorf("tag %d: type %d where a string belongs", tag, typ)
		}
		end := bytes.IndexByte(data[off:], 0)
		if end < 0 {
			return h, fmt.Errorf("tag %d: string at offset %d is not terminated", tag, off)
		}
		*dst = string(data[off : off+int64(end)])
	}
	if h.sourceRPM == "(none)" {
		h.sourceRPM = ""
	}
	return h, nil
}
