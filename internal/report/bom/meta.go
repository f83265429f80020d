package bom

import (
	"time"

	"github.com/google/uuid"
)

// Meta is what an SBOM says about itself rather than about the image.
// Tests fix Created and DocumentID to get byte-stable documents.
type Meta struct {
	// Created is the document's creation time; zero means now.
	Created time.Time
	// DocumentID makes the document unique (the CycloneDX serial number,
	// the SPDX document namespace); zero means a new random UUID.
	DocumentID uuid.UUID
	// ToolVersion is berth's version, written into the tool fields.
	ToolVersion string
}

// Resolved fills in the zero fields: the current time, truncated to the
// second and in UTC as both formats want it, a random document ID and
// version "dev".
func (m Meta) Resolved() Meta {
	if m.Created.IsZero() {
		m.Created = time.Now()
	}
	m.Created = m.Created.UTC().Truncate(time.Second)
	if m.DocumentID == uuid.Nil {
		m.DocumentID = uuid.New()
	}
	if m.ToolVersion == "" {
		m.ToolVersion = "dev"
	}
	return m
}
