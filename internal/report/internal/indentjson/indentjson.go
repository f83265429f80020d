// Package indentjson writes JSON indented exactly as encoding/json's
// Encoder with SetIndent("", "  ") and SetEscapeHTML(false) does, but
// indents while it writes instead of building a second, indented copy of
// the document in memory. SBOMs and reports are hundreds of kilobytes; in
// a short-lived CLI every fresh page of heap is a page fault, and the
// indented copy cost a warm `berth sbom` about a tenth of its run time.
package indentjson

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
)

// Encode writes v to w as indented JSON followed by a newline.
func Encode(w io.Writer, v any) error {
	var compact bytes.Buffer
	enc := json.NewEncoder(&compact)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	indent(bw, compact.Bytes())
	return bw.Flush()
}

// indent copies src, compact JSON as encoding/json writes it (no
// whitespace outside strings, one trailing newline), adding newlines and
// two-space indentation. Write errors are sticky in bufio.Writer and
// reported by Flush.
func indent(w *bufio.Writer, src []byte) {
	depth := 0
	opened := false // the previous byte opened an object or array
	newline := func() {
		w.WriteByte('\n')
		for range depth {
			w.WriteString("  ")
		}
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		if opened && c != '}' && c != ']' {
			newline()
		}
		opened = false
		switch c {
		case '"':
			// Copy the string through its closing quote; a backslash
			// escapes the byte after it.
			j := i + 1
			for j < len(src) && src[j] != '"' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(src) {
				j = len(src) - 1
			}
			w.Write(src[i : j+1])
			i = j
		case '{', '[':
			w.WriteByte(c)
			depth++
			opened = true
		case '}', ']':
			depth--
			if src[i-1] != '{' && src[i-1] != '[' {
				newline()
			}
			w.WriteByte(c)
		case ',':
			w.WriteByte(c)
			newline()
		case ':':
			w.WriteString(": ")
		default:
			w.WriteByte(c)
		}
	}
}
