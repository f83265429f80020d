// Package ignore reads the list of vulnerabilities a user accepts: a
// .trivyignore-compatible text file or Trivy's YAML ignore file, each entry
// an identifier with an optional expiry date and reason.
package ignore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Entry is one accepted vulnerability.
type Entry struct {
	ID string `json:"id"`
	// Expires is the first day the entry no longer applies; zero never.
	Expires time.Time `json:"expires,omitzero"`
	Reason  string    `json:"reason,omitempty"`
	// PURLs, when set, limit the entry to those packages.
	PURLs []string `json:"purls,omitempty"`
	// Where is "file:line", for messages.
	Where string `json:"where,omitempty"`
}

// Expired reports whether the entry no longer applies at now.
func (e Entry) Expired(now time.Time) bool {
	return !e.Expires.IsZero() && !now.Before(e.Expires)
}

// List is a parsed ignore file.
type List struct {
	Entries []Entry `json:"entries"`
}

// Load reads an ignore file; a name ending in .yaml or .yml is read as
// YAML, anything else as .trivyignore text.
func Load(path string) (*List, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading ignore file: %w", err)
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		return ParseYAML(data, path)
	}
	return ParseText(data, path)
}

// ParseText reads the .trivyignore format: one identifier per line,
// optionally followed by "exp:YYYY-MM-DD"; "#" starts a comment line, and
// the comment lines just above an entry are its reason.
func ParseText(data []byte, name string) (*List, error) {
	l := &List{Entries: []Entry{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	var comment []string
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
			comment = nil
			continue
		case strings.HasPrefix(line, "#"):
			comment = append(comment, strings.TrimSpace(strings.TrimPrefix(line, "#")))
			continue
		}
		fields := strings.Fields(line)
		e := Entry{ID: fields[0], Reason: strings.Join(comment, " "), Where: fmt.Sprintf("%s:%d", name, n)}
		comment = nil
		for _, f := range fields[1:] {
			if strings.HasPrefix(f, "#") {
				break
			}
			d, ok := strings.CutPrefix(f, "exp:")
			if !ok {
				return nil, fmt.Errorf("%s:%d: unexpected %q after %s (want exp:YYYY-MM-DD)", name, n, f, e.ID)
			}
			t, err := time.Parse(time.DateOnly, d)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: expiry date %q: want YYYY-MM-DD", name, n, d)
			}
			e.Expires = t
		}
		l.Entries = append(l.Entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return l, nil
}

type yamlFile struct {
	Vulnerabilities []yamlEntry `yaml:"vulnerabilities"`
	// Other scanners' sections of Trivy's file; accepted, not used here.
	Misconfigurations yaml.Node `yaml:"misconfigurations"`
	Secrets           yaml.Node `yaml:"secrets"`
	Licenses          yaml.Node `yaml:"licenses"`
}

type yamlEntry struct {
	ID        string    `yaml:"id"`
	Statement string    `yaml:"statement"`
	Reason    string    `yaml:"reason"`
	ExpiredAt yaml.Node `yaml:"expired_at"`
	PURLs     []string  `yaml:"purls"`
	Paths     []string  `yaml:"paths"`
	line      int
}

// ParseYAML reads Trivy's YAML ignore file:
//
//	vulnerabilities:
//	  - id: CVE-2023-1234
//	    statement: not reachable in our build
//	    expired_at: 2024-01-31
//	    purls: [pkg:npm/lodash@4.17.15]
//
// Unknown keys are errors, so a misspelt key cannot silently ignore nothing.
func ParseYAML(data []byte, name string) (*List, error) {
	var f yamlFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	l := &List{Entries: []Entry{}}
	for i, y := range f.Vulnerabilities {
		if strings.TrimSpace(y.ID) == "" {
			return nil, fmt.Errorf("%s: vulnerabilities[%d]: missing id", name, i)
		}
		if len(y.Paths) > 0 {
			return nil, fmt.Errorf("%s: vulnerabilities[%d] (%s): paths are not supported; use purls", name, i, y.ID)
		}
		e := Entry{ID: strings.TrimSpace(y.ID), Reason: y.Statement, PURLs: y.PURLs, Where: fmt.Sprintf("%s:%d", name, y.ExpiredAt.Line)}
		if e.Reason == "" {
			e.Reason = y.Reason
		}
		if e.Where == name+":0" {
			e.Where = fmt.Sprintf("%s: vulnerabilities[%d]", name, i)
		}
		if y.ExpiredAt.Value != "" {
			t, err := parseDate(y.ExpiredAt.Value)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: expired_at %q: %w", name, y.ExpiredAt.Line, y.ExpiredAt.Value, err)
			}
			e.Expires = t
		}
		l.Entries = append(l.Entries, e)
	}
	return l, nil
}

func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.DateOnly, time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("want YYYY-MM-DD or RFC 3339")
}

// Lookup finds the entry for a finding known by ids, in package purl.
// active is the entry that suppresses it at now; expired, when active is
// nil, is an entry that would have but has expired.
func (l *List) Lookup(ids []string, purl string, now time.Time) (active, expired *Entry) {
	if l == nil {
		return nil, nil
	}
	for i := range l.Entries {
		e := &l.Entries[i]
		if !slices.Contains(ids, e.ID) || !e.appliesTo(purl) {
			continue
		}
		if e.Expired(now) {
			if expired == nil {
				expired = e
			}
			continue
		}
		return e, nil
	}
	return nil, expired
}

// appliesTo reports whether the entry covers the package: every package
// when it names none; otherwise a listed purl equal to the package's, or
// the package's without its qualifiers or version.
func (e *Entry) appliesTo(purl string) bool {
	if len(e.PURLs) == 0 {
		return true
	}
	base, _, _ := strings.Cut(purl, "?")
	noVersion, _, _ := strings.Cut(base, "@")
	for _, p := range e.PURLs {
		if p == purl || p == base || p == noVersion {
			return true
		}
	}
	return false
}
