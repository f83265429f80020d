package secret

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// Streaming: a file is scanned in chunks of chunkSize bytes; the last
// overlap bytes of a chunk are scanned again at the head of the next, so
// a match up to overlap bytes long is found wherever it falls, and a
// file of any size costs chunkSize+overlap bytes of memory.
const (
	chunkSize = 1 << 20
	overlap   = 64 << 10
	// binarySniff: a NUL byte in the first binarySniff bytes makes a file
	// binary, and binary files are not scanned (as gitleaks and Trivy).
	binarySniff = 8 << 10
	// Windows around a keyword hit: single-line rules see the keyword's
	// line and its neighbours, cut to lineWindow bytes either side (a very
	// long line costs no more than a short one); multi-line rules (PEM
	// blocks, YAML documents) see wideBack before and wideAhead after.
	lineWindow = 2 << 10
	wideBack   = 4 << 10
	wideAhead  = 32 << 10
	// maxPerFile bounds the findings of one file: a generated file can
	// match thousands of times and says nothing more for it. The last
	// one says that more were left out.
	maxPerFile = 100
)

// FileScanner scans files one at a time, streaming. It is not safe for
// concurrent use; make one per goroutine.
type FileScanner struct {
	rs *Ruleset

	path     string
	buf      []byte
	consumed int // bytes of the file before buf[0]
	lines    int // newlines before buf[0]
	reported int // file offset up to which matches were reported
	sniffed  bool
	skip     bool // binary, or a path the allow rules skip
	rules    []int
	found    []Finding
	seen     map[[2]int]bool // (start, rule) of this chunk's matches
	more     int             // candidates past maxPerFile
	windows  [][][2]int      // per rule, scratch
}

// NewFileScanner returns a scanner using rs.
func (rs *Ruleset) NewFileScanner() *FileScanner {
	rs = rs.built()
	return &FileScanner{rs: rs, windows: make([][][2]int, len(rs.Rules))}
}

// ScanFile reads r to its end and returns the secrets in it.
func (s *FileScanner) ScanFile(path string, r io.Reader) ([]Finding, error) {
	s.Begin(path)
	if _, err := io.Copy(s, r); err != nil {
		s.End()
		return nil, err
	}
	return s.End(), nil
}

// Skips reports whether the allow rules skip the file at path entirely.
func (rs *Ruleset) Skips(path string) bool { return rs.built().pathAllowed(path) }

// Begin starts a file. Then Write its content, and End.
func (s *FileScanner) Begin(path string) {
	s.path = path
	s.buf = s.buf[:0]
	s.consumed, s.lines, s.reported = 0, 0, 0
	s.sniffed, s.skip = false, s.rs.pathAllowed(path)
	s.found = nil
	s.more = 0
	clear(s.seen)
}

// Write adds content; it never fails.
func (s *FileScanner) Write(p []byte) (int, error) {
	n := len(p)
	if s.skip {
		return n, nil
	}
	for len(p) > 0 {
		if s.buf == nil {
			s.buf = make([]byte, 0, chunkSize+overlap)
		}
		room := cap(s.buf) - len(s.buf)
		take := min(room, len(p))
		s.buf = append(s.buf, p[:take]...)
		p = p[take:]
		if !s.sniffed && s.consumed+len(s.buf) >= binarySniff {
			s.sniff()
			if s.skip {
				return n, nil
			}
		}
		if len(s.buf) == cap(s.buf) {
			s.scanChunk(false)
			// Keep the overlap for the next chunk.
			keep := s.buf[len(s.buf)-overlap:]
			s.lines += bytes.Count(s.buf[:len(s.buf)-overlap], []byte{'\n'})
			s.consumed += len(s.buf) - overlap
			s.buf = s.buf[:copy(s.buf, keep)]
		}
	}
	return n, nil
}

func (s *FileScanner) sniff() {
	s.sniffed = true
	head := s.buf[:min(len(s.buf), binarySniff)]
	if bytes.IndexByte(head, 0) >= 0 {
		s.skip = true
		s.buf = s.buf[:0]
	}
}

// End finishes the file and returns its findings.
func (s *FileScanner) End() []Finding {
	if !s.skip {
		if !s.sniffed {
			s.sniff()
		}
		if !s.skip {
			s.scanChunk(true)
		}
	}
	// Path-only rules (a .p12 file) need no content.
	for _, ri := range s.rs.pathOnly {
		r := s.rs.Rules[ri]
		if r.path.get().MatchString(s.path) && !s.rs.ruleSkipsPath(r, s.path) {
			s.found = append(s.found, Finding{RuleID: r.ID, Description: r.Description, Severity: r.Severity,
				Kind: KindFile, Path: s.path, Match: "file " + s.path, Secret: "(the whole file)",
				Fingerprint: fingerprint(r.ID, KindFile, s.path)})
		}
	}
	if s.more > 0 && len(s.found) > 0 {
		last := &s.found[len(s.found)-1]
		last.Match += fmt.Sprintf(" (and %d more matches in this file, not checked)", s.more)
	}
	found := dropGenericOverlaps(s.found)
	slices.SortStableFunc(found, func(a, b Finding) int {
		if a.StartLine != b.StartLine {
			return a.StartLine - b.StartLine
		}
		return strings.Compare(a.RuleID, b.RuleID)
	})
	s.found = nil
	if cap(s.buf) > chunkSize+overlap {
		s.buf = nil
	}
	return found
}

// ruleSkipsPath: a rule's allow rule with paths (and no other test)
// skips the file for that rule.
func (rs *Ruleset) ruleSkipsPath(r *Rule, p string) bool {
	for _, a := range r.allow {
		if len(a.paths) > 0 && len(a.regexes) == 0 && len(a.stopwords) == 0 && a.matchPath(p) {
			return true
		}
	}
	return false
}

// scanChunk scans buf. Matches starting in the overlap at its end are
// left to the next chunk, unless this is the last.
func (s *FileScanner) scanChunk(last bool) {
	data := s.buf
	limit := len(data)
	if !last {
		limit -= overlap
	}
	for i := range s.windows {
		s.windows[i] = s.windows[i][:0]
	}
	// Matches found twice within a chunk (from two hits or windows) are
	// reported once; across chunks, s.reported does it. Clearing here
	// keeps the set to one chunk's candidates, whatever the file's size.
	clear(s.seen)
	s.rules = s.rules[:0]
	rs := s.rs
	rs.kw.find(data, func(start int, kw int32) {
		end := start + len(rs.kw.keywords[kw])
		for _, ri := range rs.byKeyword[kw] {
			r := rs.Rules[ri]
			switch {
			case r.assignment:
				if start < limit && assignmentFollows(data, end) {
					s.anchoredAt(r, ri, data, nameStart(data, start))
				}
				continue
			case r.anchored != nil:
				if start < limit {
					s.anchoredAt(r, ri, data, start)
				}
				continue
			}
			var w [2]int
			if r.multiline {
				w = [2]int{max(0, start-wideBack), min(len(data), start+wideAhead)}
			} else {
				w = lineAround(data, start)
			}
			ws := s.windows[ri]
			if len(ws) == 0 {
				s.rules = append(s.rules, ri)
			}
			// Hits come in order: merge with the last window when they touch.
			if n := len(ws); n > 0 && w[0] <= ws[n-1][1] {
				ws[n-1][1] = max(ws[n-1][1], w[1])
			} else {
				ws = append(ws, w)
			}
			s.windows[ri] = ws
		}
	})
	slices.Sort(s.rules)
	for _, ri := range s.rules {
		r := rs.Rules[ri]
		if !s.pathOK(r) {
			continue
		}
		re := r.regex.get()
		for _, w := range s.windows[ri] {
			for _, m := range re.FindAllSubmatchIndex(data[w[0]:w[1]], -1) {
				start, end := w[0]+m[0], w[0]+m[1]
				if start >= limit || s.consumed+start < s.reported {
					continue
				}
				s.candidate(r, ri, data, start, end, m, w[0])
			}
		}
	}
	s.reported = s.consumed + limit
}

// anchoredAt runs a prefix rule at a keyword hit.
func (s *FileScanner) anchoredAt(r *Rule, ri int, data []byte, start int) {
	if r.boundary && start > 0 && isWord(data[start-1]) {
		return
	}
	if s.consumed+start < s.reported || !s.pathOK(r) {
		return
	}
	span := lineWindow
	if r.multiline {
		span = wideAhead
	}
	end := min(len(data), start+span)
	if !r.multiline {
		// The line and the next (a value may follow on it).
		if i := bytes.IndexByte(data[start:end], '\n'); i >= 0 {
			if j := bytes.IndexByte(data[start+i+1:end], '\n'); j >= 0 {
				end = start + i + 1 + j
			}
		}
	}
	m := r.anchored.get().FindSubmatchIndex(data[start:end])
	if m == nil {
		return
	}
	s.candidate(r, ri, data, start+m[0], start+m[1], m, start)
}

// nameStart is where the name holding a keyword hit begins: the run of
// [\w.-] before it, at most 50 bytes (the template's name prefix).
func nameStart(data []byte, at int) int {
	s := at
	for s > 0 && at-s < 50 && (isWord(data[s-1]) || data[s-1] == '.' || data[s-1] == '-') {
		s--
	}
	return s
}

// pathOK reports whether a rule applies to the current file.
func (s *FileScanner) pathOK(r *Rule) bool {
	if r.path != nil && !r.path.get().MatchString(s.path) {
		return false
	}
	return !s.rs.ruleSkipsPath(r, s.path)
}

// lineAround is the line holding data[at] with the line before and after
// it, at most lineWindow bytes either side of at.
func lineAround(data []byte, at int) [2]int {
	lo := max(0, at-lineWindow)
	start := lo
	if i := bytes.LastIndexByte(data[lo:at], '\n'); i >= 0 {
		// One line back: values split over two lines ("key:\n  value").
		if j := bytes.LastIndexByte(data[lo:lo+i], '\n'); j >= 0 {
			start = lo + j + 1
		}
	}
	hi := min(len(data), at+lineWindow)
	end := hi
	if i := bytes.IndexByte(data[at:hi], '\n'); i >= 0 {
		if j := bytes.IndexByte(data[at+i+1:hi], '\n'); j >= 0 {
			end = at + i + 1 + j
		}
	}
	return [2]int{start, end}
}

// candidate is one regexp match being judged.
type candidate struct {
	rule   *Rule
	path   string
	match  []byte
	secret []byte
	line   []byte
}

func (s *FileScanner) candidate(r *Rule, ri int, data []byte, start, end int, m []int, base int) {
	if len(s.found) >= maxPerFile {
		s.more++
		return
	}
	key := [2]int{s.consumed + start, ri}
	if s.seen == nil {
		s.seen = map[[2]int]bool{}
	}
	if s.seen[key] {
		return
	}
	s.seen[key] = true
	match := bytes.Trim(data[start:end], "\n")
	secret, at := secretOf(r, data, m, base, match, start)
	c := &candidate{rule: r, path: s.path, match: match, secret: secret, line: lineOf(data, start, end)}
	f, ok := s.rs.judge(c)
	if !ok {
		return
	}
	f.Kind = KindFile
	f.Path = s.path
	f.StartLine = s.lines + bytes.Count(data[:start], []byte{'\n'}) + 1
	f.EndLine = f.StartLine + bytes.Count(match, []byte{'\n'})
	f.Fingerprint = fingerprint(r.ID, KindFile, s.path, f.Match)
	f.secretStart, f.secretEnd = s.consumed+at, s.consumed+at+len(secret)
	s.found = append(s.found, f)
}

// secretOf picks the secret out of a match: the rule's secretGroup, else
// the first non-empty group, else the whole match.
func secretOf(r *Rule, data []byte, m []int, base int, match []byte, start int) ([]byte, int) {
	groups := len(m)/2 - 1
	pick := func(g int) ([]byte, int) { return data[base+m[2*g] : base+m[2*g+1]], base + m[2*g] }
	if groups == 0 {
		return match, start + bytes.Index(data[start:], match)
	}
	if r.SecretGroup > 0 && r.SecretGroup <= groups {
		if m[2*r.SecretGroup] >= 0 {
			return pick(r.SecretGroup)
		}
		return match, start + bytes.Index(data[start:], match)
	}
	for g := 1; g <= groups; g++ {
		if m[2*g] >= 0 && m[2*g+1] > m[2*g] {
			return pick(g)
		}
	}
	return match, start + bytes.Index(data[start:], match)
}

func lineOf(data []byte, start, end int) []byte {
	ls := bytes.LastIndexByte(data[:start], '\n') + 1
	le := bytes.IndexByte(data[end:], '\n')
	if le < 0 {
		le = len(data)
	} else {
		le += end
	}
	if le-ls > 4*lineWindow {
		ls, le = max(ls, start-lineWindow), min(le, end+lineWindow)
	}
	return data[ls:le]
}

// judge applies entropy and allow rules to a candidate. ok is false when
// it is not a finding at all; an allowed finding (a named allow rule)
// has Allowed set.
func (rs *Ruleset) judge(c *candidate) (f Finding, ok bool) {
	r := c.rule
	if r.Entropy > 0 && entropy(c.secret) <= r.Entropy {
		return f, false
	}
	// Generic rules want a digit: words and identifiers have high entropy
	// too (gitleaks does the same).
	if r.generic && !bytes.ContainsAny(c.secret, "0123456789") {
		return f, false
	}
	allowed := ""
	for _, a := range rs.global {
		if a.allows(c) {
			if a.id == "" {
				return f, false
			}
			allowed = a.description
			break
		}
	}
	if allowed == "" {
		for _, a := range r.allow {
			if a.allows(c) {
				if a.id == "" {
					return f, false
				}
				allowed = a.description
				break
			}
		}
	}
	return Finding{
		RuleID: r.ID, Description: r.Description, Severity: r.Severity,
		Match: maskedMatch(c.match, c.secret), Secret: maskSecret(c.secret), Allowed: allowed,
	}, true
}

// maskSecret masks a secret; a PEM block keeps its BEGIN line, which
// says what it is and reveals nothing.
func maskSecret(secret []byte) string {
	s := string(secret)
	if strings.HasPrefix(s, "-----BEGIN") {
		if i := strings.IndexByte(s, '\n'); i > 0 {
			return strings.TrimSpace(s[:i]) + " " + Mask(strings.TrimSpace(s[i+1:]))
		}
		if i := strings.Index(s[5:], "-----"); i >= 0 {
			return s[:i+10] + " " + Mask(s[i+10:])
		}
	}
	return Mask(strings.ToValidUTF8(s, "\uFFFD"))
}

// entropy is the Shannon entropy of b in bits per byte.
func entropy(b []byte) float64 {
	if len(b) == 0 {
		return 0
	}
	var counts [256]int
	for _, c := range b {
		counts[c]++
	}
	var h float64
	n := float64(len(b))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

// dropGenericOverlaps removes a generic rule's finding on a line where a
// specific rule found the same secret.
func dropGenericOverlaps(fs []Finding) []Finding {
	if len(fs) < 2 {
		return fs
	}
	specific := map[[2]any]bool{}
	for _, f := range fs {
		if !strings.Contains(f.RuleID, "generic") {
			specific[[2]any{f.StartLine, f.Secret}] = true
		}
	}
	return slices.DeleteFunc(fs, func(f Finding) bool {
		return strings.Contains(f.RuleID, "generic") && specific[[2]any{f.StartLine, f.Secret}]
	})
}
