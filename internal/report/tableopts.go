package report

import (
	"io"

	"berth.dev/berth/internal/report/table"
)

// TableOptionsFor is the table layout for w: the terminal layout when w
// is a terminal, plain text otherwise (what the table formats pick).
func TableOptionsFor(w io.Writer) table.Options { return detectTable(w) }
