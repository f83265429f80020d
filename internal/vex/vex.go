// Package vex reads OpenVEX documents and answers, for one finding, the
// statement that applies to it: not_affected and fixed statements suppress
// a finding, affected and under_investigation annotate it.
//
// Documents are read with openvex/go-vex, which also reads the older
// OpenVEX context versions and CSAF VEX.
package vex

import (
	"fmt"
	"slices"
	"strings"
	"time"

	openvex "github.com/openvex/go-vex/pkg/vex"
	"github.com/package-url/packageurl-go"
)

// Statuses of a statement.
const (
	NotAffected        = string(openvex.StatusNotAffected)
	Fixed              = string(openvex.StatusFixed)
	Affected           = string(openvex.StatusAffected)
	UnderInvestigation = string(openvex.StatusUnderInvestigation)
)

// Statement is what a VEX document says about one vulnerability in one
// product.
type Statement struct {
	Vulnerability   string    `json:"vulnerability"`
	Status          string    `json:"status"`
	Justification   string    `json:"justification,omitempty"`
	ImpactStatement string    `json:"impactStatement,omitempty"`
	ActionStatement string    `json:"actionStatement,omitempty"`
	Timestamp       time.Time `json:"timestamp,omitzero"`
	// Document is the @id (or file name) of the document that said it.
	Document string `json:"document"`
}

// Suppresses reports whether the statement removes the finding.
func (s Statement) Suppresses() bool {
	return s.Status == NotAffected || s.Status == Fixed
}

type entry struct {
	stmt openvex.Statement
	when time.Time
	doc  string
}

// Set is the statements of several documents.
type Set struct {
	entries []entry
}

// Load reads OpenVEX (any context version) or CSAF VEX documents.
func Load(paths ...string) (*Set, error) {
	s := &Set{}
	for _, p := range paths {
		doc, err := openvex.Open(p)
		if err != nil {
			return nil, fmt.Errorf("reading VEX document %s: %w", p, err)
		}
		if err := s.add(doc, p); err != nil {
			return nil, fmt.Errorf("VEX document %s: %w", p, err)
		}
	}
	return s, nil
}

// Parse reads one OpenVEX document in the current context version; name
// identifies it in messages when it has no @id.
func Parse(data []byte, name string) (*Set, error) {
	doc, err := openvex.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("VEX document %s: %w", name, err)
	}
	s := &Set{}
	if err := s.add(doc, name); err != nil {
		return nil, fmt.Errorf("VEX document %s: %w", name, err)
	}
	return s, nil
}

func (s *Set) add(doc *openvex.VEX, name string) error {
	if doc.ID != "" {
		name = doc.ID
	}
	var docTime time.Time
	if doc.Timestamp != nil {
		docTime = *doc.Timestamp
	}
	for i, st := range doc.Statements {
		if !st.Status.Valid() {
			return fmt.Errorf("statement %d: unknown status %q", i, st.Status)
		}
		if st.Vulnerability.Name == "" && st.Vulnerability.ID == "" && len(st.Vulnerability.Aliases) == 0 {
			return fmt.Errorf("statement %d: no vulnerability", i)
		}
		if len(st.Products) == 0 {
			return fmt.Errorf("statement %d (%s): no products", i, st.Vulnerability.Name)
		}
		when := docTime
		if st.Timestamp != nil && !st.Timestamp.IsZero() {
			when = *st.Timestamp
		}
		s.entries = append(s.entries, entry{stmt: st, when: when, doc: name})
	}
	return nil
}

// Len is the number of statements.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.entries)
}

// Lookup returns the latest statement about a vulnerability known by any
// of ids in the package purl. A statement's product matches when it is the
// package (purls compared as OpenVEX does: a product purl without version
// or qualifiers covers every version or qualifier), or when it is one of
// the image's identifiers (its digest, reference or pkg:oci purl) and
// either has no subcomponents or lists the package among them.
func (s *Set) Lookup(ids []string, purl string, image []string) (Statement, bool) {
	if s == nil {
		return Statement{}, false
	}
	var best *entry
	for i := range s.entries {
		e := &s.entries[i]
		if !matchesVuln(e.stmt.Vulnerability, ids) || !matchesProduct(e.stmt.Products, purl, image) {
			continue
		}
		if best == nil || !e.when.Before(best.when) {
			best = e
		}
	}
	if best == nil {
		return Statement{}, false
	}
	return Statement{
		Vulnerability:   string(best.stmt.Vulnerability.Name),
		Status:          string(best.stmt.Status),
		Justification:   string(best.stmt.Justification),
		ImpactStatement: best.stmt.ImpactStatement,
		ActionStatement: best.stmt.ActionStatement,
		Timestamp:       best.when,
		Document:        best.doc,
	}, true
}

func matchesVuln(v openvex.Vulnerability, ids []string) bool {
	names := []string{string(v.Name), v.ID}
	for _, a := range v.Aliases {
		names = append(names, string(a))
	}
	for _, n := range names {
		if n != "" && slices.ContainsFunc(ids, func(id string) bool { return strings.EqualFold(id, n) }) {
			return true
		}
	}
	return false
}

func matchesProduct(products []openvex.Product, purl string, image []string) bool {
	for i := range products {
		p := &products[i]
		if purl != "" && p.Component.Matches(purl) {
			return true
		}
		for _, img := range image {
			if img == "" || !isImage(p.Component, img) {
				continue
			}
			if len(p.Subcomponents) == 0 {
				return true
			}
			for j := range p.Subcomponents {
				if purl != "" && p.Subcomponents[j].Matches(purl) {
					return true
				}
			}
		}
	}
	return false
}

// isImage reports whether a product names the image img (a reference or a
// manifest digest); a pkg:oci purl names an image by its digest.
func isImage(c openvex.Component, img string) bool {
	if c.Matches(img) {
		return true
	}
	if strings.HasPrefix(c.ID, "pkg:oci/") {
		if p, err := packageurl.FromString(c.ID); err == nil && p.Version == img {
			return true
		}
	}
	return false
}
