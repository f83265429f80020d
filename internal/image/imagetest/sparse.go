// Package imagetest writes layer content that archive/tar's Writer
// refuses to, for tests of how berth reads hostile layers.
package imagetest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"strconv"
)

const blockSize = 512

// WriteSparse appends to a tar a GNU sparse file in PAX format 1.0, as
// GNU tar --sparse writes it: name, of the given permissions, is logical
// bytes long, data at its start and a hole after it. Only len(data) bytes (and one block of sparse
// map) are stored. tw's entries so far are flushed; w is the writer tw
// writes to, and tw may go on writing entries afterwards.
//
// archive/tar reads such entries (and expands the hole into zeros when
// read) but its Writer drops GNU.sparse records, so the headers are
// built here by hand.
func WriteSparse(tw *tar.Writer, w io.Writer, name string, perm int64, logical int64, data []byte) error {
	if int64(len(data)) > logical {
		return fmt.Errorf("sparse %s: %d bytes of data in a %d-byte file", name, len(data), logical)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var records bytes.Buffer
	for _, kv := range [][2]string{
		{"GNU.sparse.major", "1"},
		{"GNU.sparse.minor", "0"},
		{"GNU.sparse.name", name},
		{"GNU.sparse.realsize", strconv.FormatInt(logical, 10)},
	} {
		records.WriteString(paxRecord(kv[0], kv[1]))
	}
	// The 1.0 map leads the file's data: the number of fragments, then
	// offset and length of each, one decimal per line, padded to a block.
	sparseMap := []byte(fmt.Sprintf("1\n0\n%d\n", len(data)))
	sparseMap = append(sparseMap, make([]byte, pad(int64(len(sparseMap))))...)

	var out bytes.Buffer
	out.Write(header("PaxHeaders.0/"+name, 'x', 0o644, int64(records.Len())))
	out.Write(records.Bytes())
	out.Write(make([]byte, pad(int64(records.Len()))))
	physical := int64(len(sparseMap) + len(data))
	out.Write(header("GNUSparseFile.0/"+name, tar.TypeReg, perm, physical))
	out.Write(sparseMap)
	out.Write(data)
	out.Write(make([]byte, pad(int64(len(data)))))
	_, err := w.Write(out.Bytes())
	return err
}

// paxRecord formats "LEN key=value\n", LEN counting itself.
func paxRecord(k, v string) string {
	n := len(k) + len(v) + 3 // ' ', '=', '\n'
	n += len(strconv.Itoa(n))
	r := strconv.Itoa(n) + " " + k + "=" + v + "\n"
	if len(r) != n { // the length's own digits added a digit
		r = strconv.Itoa(len(r)) + " " + k + "=" + v + "\n"
	}
	return r
}

func pad(n int64) int64 { return (blockSize - n%blockSize) % blockSize }

// header is a ustar header block.
func header(name string, typ byte, perm, size int64) []byte {
	b := make([]byte, blockSize)
	if len(name) > 100 {
		name = name[len(name)-100:]
	}
	copy(b[0:100], name)
	copy(b[100:108], fmt.Sprintf("%07o\x00", perm))
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", 0))
	b[156] = typ
	copy(b[257:263], "ustar\x00")
	copy(b[263:265], "00")
	// The checksum is the byte sum with its own field as spaces.
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}
