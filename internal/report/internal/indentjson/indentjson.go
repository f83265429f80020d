// Package indentjson writes JSON indented exactly as encoding/json's
// Encoder with SetIndent("", "  ") and SetEscapeHTML(false) does, but
// indents while it writes instead of building a second, indented copy of
// the document in memory. SBOMs and reports are hundreds of kilobytes; in
// a short-lived CLI every fresh page of heap is a page fault, and the
// indented copy cost a warm `berth sbom` about a tenth of its run time.
package indentjson

import (
	"bufio"
	"encoding/json"
	"io"
)

// Encode writes v to w as indented JSON followed by a newline.
func Encode(w io.Writer, v any) error {
	bw := bufio.NewWriterSize(w, 32<<10)
	// json.Encoder hands its whole compact encoding to one Write call on
	// the indenter, straight from its pooled buffer: no copy of the
	// document is made on the way.
	enc := json.NewEncoder(&indenter{w: bw})
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	return bw.Flush()
}

// indenter copies compact JSON as encoding/json writes it (no whitespace
// outside strings, a trailing newline), adding newlines and two-space
// indentation. It keeps its state between writes, so the document may
// arrive in any number of pieces. Write errors are sticky in bufio.Writer
// and reported by Flush.
type indenter struct {
	w        *bufio.Writer
	depth    int
	opened   bool // the previous byte opened an object or array
	inString bool
	escaped  bool // inside a string, the previous byte was a backslash
}

func (d *indenter) newline() {
	d.w.WriteByte('\n')
	for range d.depth {
		d.w.WriteString("  ")
	}
}

func (d *indenter) Write(src []byte) (int, error) {
	for i := 0; i < len(src); i++ {
		if d.inString {
			// Copy up to the closing quote in one write.
			j := i
			for ; j < len(src); j++ {
				if d.escaped {
					d.escaped = false
				} else if src[j] == '\\' {
					d.escaped = true
				} else if src[j] == '"' {
					d.inString = false
					break
				}
			}
			if j == len(src) {
				d.w.Write(src[i:])
				break
			}
			d.w.Write(src[i : j+1])
			i = j
			continue
		}
		c := src[i]
		if d.opened && c != '}' && c != ']' {
			d.newline()
		}
		wasOpened := d.opened
		d.opened = false
		switch c {
		case '"':
			d.w.WriteByte(c)
			d.inString = true
		case '{', '[':
			d.w.WriteByte(c)
			d.depth++
			d.opened = true
		case '}', ']':
			d.depth--
			if !wasOpened {
				d.newline()
			}
			d.w.WriteByte(c)
		case ',':
			d.w.WriteByte(c)
			d.newline()
		case ':':
			d.w.WriteString(": ")
		default:
			d.w.WriteByte(c)
		}
	}
	return len(src), nil
}
