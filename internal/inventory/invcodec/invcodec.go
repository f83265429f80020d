// Package invcodec is the compact binary form in which the server stores
// an inventory: every string as a length and its bytes, every list as its
// length, in a fixed field order.
//
// It is hand-written because decoding the stored inventory was the largest
// part of re-matching a stored report (0.46 ms of 1.27 ms for 150
// packages with CBOR, most of it allocating a string per field). Decode
// allocates three times whatever the size: it copies the input once into
// a string that every decoded string shares, one slice for all the
// packages' string lists, and the packages. The price is that a decoded
// inventory keeps the whole input alive while any of its strings is, which
// is what a report's inventory does anyway.
//
// The reference is the JSON form (and CBOR, which the stores wrote before
// and still read): the tests and FuzzRoundTrip check that every inventory
// decodes to what a JSON round trip gives, nil and empty lists included.
package invcodec

import (
	"encoding/binary"
	"errors"
	"fmt"

	"berth.dev/berth/internal/inventory"
)

// magic starts every encoding. CBOR, which the stores wrote before, never
// starts a map (an inventory) with a zero byte.
const magic = "\x00binv1"

// Is reports whether b is an encoding of this package (and not, say, CBOR).
func Is(b []byte) bool { return len(b) >= len(magic) && string(b[:len(magic)]) == magic }

// Append appends the encoding of inv to dst.
func Append(dst []byte, inv *inventory.Inventory) []byte {
	e := encoder{buf: append(dst, magic...)}
	e.str(inv.Source)
	e.str(inv.Digest)
	e.str(inv.ConfigDigest)
	e.str(inv.OS)
	e.str(inv.Architecture)
	if d := inv.Distro; d == nil {
		e.buf = append(e.buf, 0)
	} else {
		e.buf = append(e.buf, 1)
		e.str(d.ID)
		e.str(d.VersionID)
		e.str(d.Codename)
		e.str(d.PrettyName)
	}
	e.count(inv.Layers == nil, len(inv.Layers))
	for i := range inv.Layers {
		l := &inv.Layers[i]
		e.str(l.DiffID)
		e.str(l.Digest)
		e.buf = binary.AppendVarint(e.buf, l.Size)
		e.str(l.CreatedBy)
	}
	e.count(inv.Packages == nil, len(inv.Packages))
	for i := range inv.Packages {
		p := &inv.Packages[i]
		e.str(string(p.Ecosystem))
		e.str(p.Name)
		e.str(p.Version)
		e.str(p.SourceName)
		e.str(p.SourceVersion)
		e.str(p.Arch)
		e.str(p.PURL)
		e.list(p.Licenses)
		e.list(p.Locations)
		e.str(p.Layer)
		e.str(p.Analyzer)
		e.list(p.DependsOn)
		e.buf = append(e.buf, flags(p))
	}
	e.list(inv.Warnings)
	return e.buf
}

// A package's booleans share one byte. Encodings written before Local
// existed hold 0 or 1 there (Dev), which decode as they did.
const (
	flagDev   = 1 << 0
	flagLocal = 1 << 1
)

func flags(p *inventory.Package) byte {
	var f byte
	if p.Dev {
		f |= flagDev
	}
	if p.Local {
		f |= flagLocal
	}
	return f
}

type encoder struct{ buf []byte }

func (e *encoder) str(s string) {
	e.buf = binary.AppendUvarint(e.buf, uint64(len(s)))
	e.buf = append(e.buf, s...)
}

// count writes a list's length plus one, or 0 for a nil list, so that a
// nil list decodes as nil and an empty one as empty (JSON tells them
// apart where a field has no omitempty).
func (e *encoder) count(isNil bool, n int) {
	if isNil {
		e.buf = append(e.buf, 0)
		return
	}
	e.buf = binary.AppendUvarint(e.buf, uint64(n)+1)
}

// list writes a string list. Every string list of an inventory is
// omitted from JSON when empty, so an empty list decodes as nil, as it
// does from JSON.
func (e *encoder) list(l []string) {
	e.buf = binary.AppendUvarint(e.buf, uint64(len(l)))
	for _, s := range l {
		e.str(s)
	}
}

// ErrCorrupt is wrapped by every error Decode returns.
var ErrCorrupt = errors.New("corrupt inventory encoding")

// Decode decodes what Append wrote into inv, replacing its contents.
// On an error inv is left empty.
func Decode(b []byte, inv *inventory.Inventory) error {
	*inv = inventory.Inventory{}
	if !Is(b) {
		return fmt.Errorf("%w: no header", ErrCorrupt)
	}
	d := decoder{s: string(b), at: len(magic)}
	inv.Source = d.str()
	inv.Digest = d.str()
	inv.ConfigDigest = d.str()
	inv.OS = d.str()
	inv.Architecture = d.str()
	switch d.byte() {
	case 0:
	case 1:
		inv.Distro = &inventory.Distro{ID: d.str(), VersionID: d.str(), Codename: d.str(), PrettyName: d.str()}
	default:
		d.fail("distro marker")
	}
	// Every layer takes at least four bytes and every package fourteen:
	// a count larger than the bytes left is corrupt, not an allocation.
	if n, isNil := d.count(4); !isNil {
		inv.Layers = make([]inventory.Layer, n)
		for i := range inv.Layers {
			l := &inv.Layers[i]
			l.DiffID, l.Digest = d.str(), d.str()
			l.Size = d.varint()
			l.CreatedBy = d.str()
		}
	}
	if n, isNil := d.count(13); !isNil {
		inv.Packages = make([]inventory.Package, n)
		// The packages' string lists share one slice; it grows only for
		// inventories whose packages list more than two strings on
		// average.
		lists := make([]string, 0, 2*n)
		for i := range inv.Packages {
			p := &inv.Packages[i]
			p.Ecosystem = inventory.Ecosystem(d.str())
			p.Name, p.Version = d.str(), d.str()
			p.SourceName, p.SourceVersion = d.str(), d.str()
			p.Arch, p.PURL = d.str(), d.str()
			p.Licenses, lists = d.list(lists)
			p.Locations, lists = d.list(lists)
			p.Layer, p.Analyzer = d.str(), d.str()
			p.DependsOn, lists = d.list(lists)
			if f := d.byte(); f&^(flagDev|flagLocal) != 0 {
				d.fail("package flags")
			} else {
				p.Dev, p.Local = f&flagDev != 0, f&flagLocal != 0
			}
			if d.err != nil {
				break
			}
		}
	}
	inv.Warnings, _ = d.list(nil)
	if d.err == nil && d.at != len(d.s) {
		d.fail(fmt.Sprintf("%d bytes after the end", len(d.s)-d.at))
	}
	if d.err != nil {
		*inv = inventory.Inventory{}
		return d.err
	}
	return nil
}

// decoder reads from s; after the first error every read returns a zero
// value and the error stays.
type decoder struct {
	s   string
	at  int
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d", ErrCorrupt, what, d.at)
	}
	d.at = len(d.s)
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	var v uint64
	var shift uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if d.at >= len(d.s) {
			d.fail("truncated number")
			return 0
		}
		c := d.s[d.at]
		d.at++
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break
			}
			return v | uint64(c)<<shift
		}
		v |= uint64(c&0x7f) << shift
		shift += 7
	}
	d.fail("number too large")
	return 0
}

func (d *decoder) varint() int64 {
	u := d.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.at >= len(d.s) {
		d.fail("truncated")
		return 0
	}
	c := d.s[d.at]
	d.at++
	return c
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.s)-d.at) {
		d.fail("string longer than the input")
		return ""
	}
	s := d.s[d.at : d.at+int(n)]
	d.at += int(n)
	return s
}

// count reads a list's length (see encoder.count), refusing one that
// could not fit in the bytes left at minSize bytes an element.
func (d *decoder) count(minSize int) (n int, isNil bool) {
	v := d.uvarint()
	if d.err != nil || v == 0 {
		return 0, true
	}
	v--
	if v > uint64((len(d.s)-d.at)/minSize) {
		d.fail("list longer than the input")
		return 0, true
	}
	return int(v), false
}

// list reads a string list into the end of into and returns it (capped,
// so that appending to it never overwrites the next list, and nil when
// empty) with into.
func (d *decoder) list(into []string) ([]string, []string) {
	v := d.uvarint()
	if v > uint64(len(d.s)-d.at) {
		d.fail("list longer than the input")
	}
	n := int(v)
	if d.err != nil || n == 0 {
		return nil, into
	}
	start := len(into)
	for range n {
		into = append(into, d.str())
	}
	return into[start:len(into):len(into)], into
}
