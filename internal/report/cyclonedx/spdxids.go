package cyclonedx

import (
	_ "embed"
	"strings"
)

// spdxIDs are the license and exception ids the CycloneDX 1.6 schema
// accepts in license.id: the enum of its spdx.schema.json (SPDX License
// List 3.17), copied from internal/report/testdata/schemas, one a line in
// byte order (LC_ALL=C sort). Newer SPDX ids (Kazlib, SMAIL-GPL,
// Artistic-dist, all in real Debian images) would make the document
// invalid there, so they are written as license.name.
//
//go:embed spdx-ids.txt
var spdxIDs string

// schemaKnowsID reports whether id may be written as license.id. It
// searches the sorted lines of spdxIDs in place: no map to build on every
// run, nothing allocated.
func schemaKnowsID(id string) bool {
	if id == "" || strings.IndexByte(id, '\n') >= 0 {
		return false
	}
	s := spdxIDs
	for len(s) > 0 {
		// The line around the middle of s: s starts and ends on line
		// boundaries.
		mid := len(s) / 2
		start := strings.LastIndexByte(s[:mid], '\n') + 1
		end := strings.IndexByte(s[mid:], '\n')
		if end < 0 {
			end = len(s)
		} else {
			end += mid
		}
		switch line := s[start:end]; {
		case id == line:
			return true
		case id < line:
			s = s[:start]
		default:
			s = s[min(end+1, len(s)):]
		}
	}
	return false
}
