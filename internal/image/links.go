package image

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"iter"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Links are the symlinks of a layer, path → target as written. They are
// kept for a whole scan and in every layer's cache entry, and a warm scan
// reads them all, so they are one string of records sorted by path, each
// "LEN:PATHLEN:TARGET" (lengths in decimal), searched by binary search:
// in the cache a plain JSON string read in one piece, with nothing to
// unescape for ordinary names. As a JSON map of a thousand entries they
// had doubled the time of a warm scan. The zero value and nil are empty.
type Links struct {
	data    string
	records []linkRecord
}

// linkRecord locates one link in data.
type linkRecord struct{ path, pathLen, target, targetLen int32 }

// NewLinks makes Links of m.
func NewLinks(m map[string]string) *Links {
	paths := make([]string, 0, len(m))
	for p := range m {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var b strings.Builder
	for _, p := range paths {
		b.WriteString(strconv.Itoa(len(p)))
		b.WriteByte(':')
		b.WriteString(p)
		b.WriteString(strconv.Itoa(len(m[p])))
		b.WriteByte(':')
		b.WriteString(m[p])
	}
	l, err := parseLinks(b.String())
	if err != nil {
		panic("image: NewLinks: " + err.Error()) // sorted and well formed by construction
	}
	return l
}

var errBadLinks = errors.New("links: not sorted LEN:NAME records")

// parseLinks indexes data, checking that it is well formed and sorted:
// it comes from a file on disk, and Lookup relies on the order.
func parseLinks(data string) (*Links, error) {
	l := &Links{data: data}
	if len(data) > 1<<31-1 {
		return nil, errBadLinks
	}
	field := func(at int) (start, n int, err error) {
		colon := strings.IndexByte(data[at:], ':')
		if colon < 1 || colon > 10 {
			return 0, 0, errBadLinks
		}
		n, err = strconv.Atoi(data[at : at+colon])
		start = at + colon + 1
		if err != nil || n < 0 || n > len(data)-start {
			return 0, 0, errBadLinks
		}
		return start, n, nil
	}
	prev := ""
	for at := 0; at < len(data); {
		p, pn, err := field(at)
		if err != nil {
			return nil, err
		}
		t, tn, err := field(p + pn)
		if err != nil {
			return nil, err
		}
		if len(l.records) > 0 && data[p:p+pn] <= prev {
			return nil, errBadLinks
		}
		prev = data[p : p+pn]
		l.records = append(l.records, linkRecord{int32(p), int32(pn), int32(t), int32(tn)})
		at = t + tn
	}
	return l, nil
}

// Len is the number of links.
func (l *Links) Len() int {
	if l == nil {
		return 0
	}
	return len(l.records)
}

func (l *Links) record(i int) (p, target string) {
	r := l.records[i]
	return l.data[r.path : r.path+r.pathLen], l.data[r.target : r.target+r.targetLen]
}

// Lookup returns the target of the symlink at p.
func (l *Links) Lookup(p string) (string, bool) {
	if l == nil {
		return "", false
	}
	i := sort.Search(len(l.records), func(i int) bool {
		q, _ := l.record(i)
		return q >= p
	})
	if i == len(l.records) {
		return "", false
	}
	q, t := l.record(i)
	return t, q == p
}

// All yields every link, by path.
func (l *Links) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for i := range l.Len() {
			if !yield(l.record(i)) {
				return
			}
		}
	}
}

// Bytes is what the links count against Limits.MaxLinkBytes: their paths
// and targets.
func (l *Links) Bytes() int64 {
	var n int64
	for i := range l.Len() {
		n += int64(l.records[i].pathLen + l.records[i].targetLen)
	}
	return n
}

// MarshalJSON writes the records as a JSON string, or, when a name is not
// UTF-8 (old tarballs hold Latin-1 names), which a JSON string cannot
// carry unchanged, as "=" and their base64 (records start with a digit).
func (l *Links) MarshalJSON() ([]byte, error) {
	if l == nil {
		return []byte(`""`), nil
	}
	if !utf8.ValidString(l.data) {
		return json.Marshal("=" + base64.StdEncoding.EncodeToString([]byte(l.data)))
	}
	return json.Marshal(l.data)
}

func (l *Links) UnmarshalJSON(b []byte) error {
	var s string
	// What json.Marshal wrote for ordinary names has nothing escaped: the
	// bytes between the quotes are the string (json has checked them).
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' && bytes.IndexByte(b, '\\') < 0 {
		s = string(b[1 : len(b)-1])
	} else if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if enc, ok := strings.CutPrefix(s, "="); ok {
		raw, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return errBadLinks
		}
		s = string(raw)
	}
	parsed, err := parseLinks(s)
	if err != nil {
		return err
	}
	*l = *parsed
	return nil
}
