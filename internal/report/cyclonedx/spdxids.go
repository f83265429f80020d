package cyclonedx

import (
	_ "embed"
	"strings"
	"sync"
)

// spdxIDs are the license and exception ids the CycloneDX 1.6 schema
// accepts in license.id: the enum of its spdx.schema.json (SPDX License
// List 3.17), copied from internal/report/testdata/schemas. Newer SPDX ids
// (Kazlib, SMAIL-GPL, Artistic-dist, all in real Debian images) would
// make the document invalid there, so they are written as license.name.
//
//go:embed spdx-ids.txt
var spdxIDs string

var cycloneDXIDs = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	for _, id := range strings.Fields(spdxIDs) {
		m[id] = true
	}
	return m
})

// schemaKnowsID reports whether id may be written as license.id.
func schemaKnowsID(id string) bool { return cycloneDXIDs()[id] }
