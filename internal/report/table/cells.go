package table

import "berth.dev/berth/internal/report/bom"

// The helpers below let the other text reports (the vulnerability table)
// print cells exactly as this table does: escaped, measured in terminal
// cells, cut with an ellipsis, and titled the same way.

// Clean escapes control and bidi characters and invalid UTF-8 so that s
// prints as the text it appears to be.
func Clean(s string) string { return clean(s) }

// Width is the number of terminal cells s takes.
func Width(s string) int { return width(s) }

// Truncate cuts s to limit cells, ending in "…", without splitting a
// grapheme cluster.
func Truncate(s string, limit int) string { return truncate(s, limit) }

// ShortLayer is the first 12 hex digits of a diffID, as docker shows ids.
func ShortLayer(diffID string) string { return shortLayer(diffID) }

// Title is the heading of the terminal layout: image name and tag, distro
// and digest.
func Title(b *bom.BOM) string { return title(b) }
