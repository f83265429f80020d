package vulndb

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"berth.dev/berth/internal/osv"
)

// The per-package index value is a compact binary list of records, written
// once at import so a lookup costs one key read and one pass over bytes:
// encoding/json or gob would spend most of the matcher's 20 µs budget on
// reflection. All strings of a value are substrings of one copy of it, and the
// slices of all its records come from a handful of shared arenas, so decoding
// a package with many records still allocates a fixed, small number of times.
//
// Layout: version byte; uvarint counts of records, strings, severities,
// affected entries, ranges, events and references (the arena sizes); then
// each record. Strings and raw JSON are uvarint length + bytes; a time is a
// flag byte (0 = zero) then varint seconds and uvarint nanoseconds.

const codecVersion = 1

var errCorrupt = errors.New("corrupt index value")

type arenaSizes struct{ recs, strs, sevs, affs, ranges, events, refs int }

func (n *arenaSizes) count(v *osv.Vulnerability) {
	n.recs++
	n.strs += len(v.Aliases) + len(v.Upstream) + len(v.Related)
	n.sevs += len(v.Severity)
	n.refs += len(v.References)
	n.affs += len(v.Affected)
	for _, a := range v.Affected {
		n.sevs += len(a.Severity)
		n.strs += len(a.Versions)
		n.ranges += len(a.Ranges)
		for _, r := range a.Ranges {
			n.events += len(r.Events)
		}
	}
}

// appendHeader starts an index value holding records whose arena sizes
// are n; their encodeRecord output follows.
func appendHeader(dst []byte, n arenaSizes) []byte {
	dst = append(dst, codecVersion)
	for _, c := range [...]int{n.recs, n.strs, n.sevs, n.affs, n.ranges, n.events, n.refs} {
		dst = binary.AppendUvarint(dst, uint64(c))
	}
	return dst
}

func encodeRecord(b []byte, v *osv.Vulnerability) []byte {
	b = appendString(b, v.ID)
	b = appendString(b, v.SchemaVersion)
	b = appendTime(b, v.Modified)
	b = appendTime(b, v.Published)
	b = appendTime(b, v.Withdrawn)
	b = appendStrings(b, v.Aliases)
	b = appendStrings(b, v.Upstream)
	b = appendStrings(b, v.Related)
	b = appendString(b, v.Summary)
	b = appendSeverities(b, v.Severity)
	b = binary.AppendUvarint(b, uint64(len(v.Affected)))
	for i := range v.Affected {
		a := &v.Affected[i]
		b = appendString(b, a.Package.Ecosystem)
		b = appendString(b, a.Package.Name)
		b = appendString(b, a.Package.PURL)
		b = appendSeverities(b, a.Severity)
		b = binary.AppendUvarint(b, uint64(len(a.Ranges)))
		for _, r := range a.Ranges {
			b = appendString(b, r.Type)
			b = appendString(b, r.Repo)
			b = binary.AppendUvarint(b, uint64(len(r.Events)))
			for _, e := range r.Events {
				kind, val := eventKind(e)
				b = append(b, kind)
				b = appendString(b, val)
			}
			b = appendString(b, string(r.DatabaseSpecific))
		}
		b = appendStrings(b, a.Versions)
		b = appendString(b, string(a.EcosystemSpecific))
		b = appendString(b, string(a.DatabaseSpecific))
	}
	b = binary.AppendUvarint(b, uint64(len(v.References)))
	for _, r := range v.References {
		b = appendString(b, r.Type)
		b = appendString(b, r.URL)
	}
	return appendString(b, string(v.DatabaseSpecific))
}

const (
	evIntroduced byte = iota + 1
	evFixed
	evLastAffected
	evLimit
)

// eventKind picks the one set field of an event; records reach the encoder
// only after checkRange has made sure exactly one is.
func eventKind(e osv.Event) (byte, string) {
	switch {
	case e.Introduced != "":
		return evIntroduced, e.Introduced
	case e.Fixed != "":
		return evFixed, e.Fixed
	case e.LastAffected != "":
		return evLastAffected, e.LastAffected
	default:
		return evLimit, e.Limit
	}
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

func appendSeverities(b []byte, ss []osv.Severity) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s.Type)
		b = appendString(b, s.Score)
	}
	return b
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// decoder reads one index value. Errors stick: after the first, every read
// returns zero values and decodeRecords reports errCorrupt.
type decoder struct {
	s   string
	pos int
	err bool

	strs   []string
	sevs   []osv.Severity
	affs   []osv.Affected
	ranges []osv.Range
	events []osv.Event
	refs   []osv.Reference
}

// decodeRecords decodes an index value. The records share no memory with
// value, which may be reused by the caller (bbolt's memory map) afterwards.
func decodeRecords(value []byte) ([]*osv.Vulnerability, error) {
	d := &decoder{s: string(value)}
	if len(d.s) == 0 || d.s[0] != codecVersion {
		return nil, fmt.Errorf("%w: unknown version", errCorrupt)
	}
	d.pos = 1
	var n [7]int
	for i := range n {
		// Each arena entry takes at least one byte, so no honest count
		// exceeds the value's length; this keeps a corrupt value from
		// asking for a huge allocation.
		n[i] = d.count()
	}
	if d.err {
		return nil, errCorrupt
	}
	recs := make([]osv.Vulnerability, n[0])
	d.strs = make([]string, n[1])
	d.sevs = make([]osv.Severity, n[2])
	d.affs = make([]osv.Affected, n[3])
	d.ranges = make([]osv.Range, n[4])
	d.events = make([]osv.Event, n[5])
	d.refs = make([]osv.Reference, n[6])
	out := make([]*osv.Vulnerability, n[0])
	for i := range recs {
		d.record(&recs[i])
		out[i] = &recs[i]
	}
	if d.err || d.pos != len(d.s) {
		return nil, errCorrupt
	}
	return out, nil
}

func (d *decoder) record(v *osv.Vulnerability) {
	v.ID = d.str()
	v.SchemaVersion = d.str()
	v.Modified = d.time()
	v.Published = d.time()
	v.Withdrawn = d.time()
	v.Aliases = d.strList()
	v.Upstream = d.strList()
	v.Related = d.strList()
	v.Summary = d.str()
	v.Severity = d.severities()
	na := d.count()
	v.Affected = take(&d.affs, na, d)
	for i := range v.Affected {
		a := &v.Affected[i]
		a.Package.Ecosystem = d.str()
		a.Package.Name = d.str()
		a.Package.PURL = d.str()
		a.Severity = d.severities()
		a.Ranges = take(&d.ranges, d.count(), d)
		for j := range a.Ranges {
			r := &a.Ranges[j]
			r.Type = d.str()
			r.Repo = d.str()
			r.Events = take(&d.events, d.count(), d)
			for k := range r.Events {
				kind := d.byte()
				val := d.str()
				switch kind {
				case evIntroduced:
					r.Events[k].Introduced = val
				case evFixed:
					r.Events[k].Fixed = val
				case evLastAffected:
					r.Events[k].LastAffected = val
				case evLimit:
					r.Events[k].Limit = val
				default:
					d.err = true
				}
			}
			r.DatabaseSpecific = d.raw()
		}
		a.Versions = d.strList()
		a.EcosystemSpecific = d.raw()
		a.DatabaseSpecific = d.raw()
	}
	v.References = take(&d.refs, d.count(), d)
	for i := range v.References {
		v.References[i].Type = d.str()
		v.References[i].URL = d.str()
	}
	v.DatabaseSpecific = d.raw()
}

// take cuts n elements off the front of an arena. The result's capacity is
// n, so a caller appending to it gets a fresh array instead of overwriting
// the next record's data.
func take[T any](arena *[]T, n int, d *decoder) []T {
	if n == 0 || d.err {
		return nil
	}
	if n > len(*arena) {
		d.err = true
		return nil
	}
	s := (*arena)[:n:n]
	*arena = (*arena)[n:]
	return s
}

func (d *decoder) uvarint() uint64 {
	if d.err {
		return 0
	}
	var x uint64
	var shift uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if d.pos >= len(d.s) {
			break
		}
		c := d.s[d.pos]
		d.pos++
		if c < 0x80 {
			return x | uint64(c)<<shift
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	d.err = true
	return 0
}

// count reads a length that must fit in what is left of the value.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.s)-d.pos) {
		d.err = true
		return 0
	}
	return int(n)
}

func (d *decoder) byte() byte {
	if d.err || d.pos >= len(d.s) {
		d.err = true
		return 0
	}
	c := d.s[d.pos]
	d.pos++
	return c
}

func (d *decoder) str() string {
	n := d.count()
	if d.err {
		return ""
	}
	s := d.s[d.pos : d.pos+n]
	d.pos += n
	return s
}

func (d *decoder) raw() json.RawMessage {
	s := d.str()
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

func (d *decoder) strList() []string {
	list := take(&d.strs, d.count(), d)
	for i := range list {
		list[i] = d.str()
	}
	return list
}

func (d *decoder) severities() []osv.Severity {
	list := take(&d.sevs, d.count(), d)
	for i := range list {
		list[i].Type = d.str()
		list[i].Score = d.str()
	}
	return list
}

func (d *decoder) time() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
		sec := d.varint()
		nsec := d.uvarint()
		if nsec >= 1e9 {
			d.err = true
			return time.Time{}
		}
		return time.Unix(sec, int64(nsec)).UTC()
	default:
		d.err = true
		return time.Time{}
	}
}

func (d *decoder) varint() int64 {
	ux := d.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}
