package imagetest_test

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"

	"berth.dev/berth/internal/image/imagetest"
)

func TestWriteSparseReadsBack(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "before", Typeflag: tar.TypeReg, Size: 3, Mode: 0o644})
	tw.Write([]byte("abc"))
	if err := imagetest.WriteSparse(tw, &buf, "usr/bin/tool", 0o755, 1<<20, []byte("head")); err != nil {
		t.Fatal(err)
	}
	tw.WriteHeader(&tar.Header{Name: "after", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644})
	tw.Write([]byte("z"))
	tw.Close()
	tr := tar.NewReader(&buf)
	var got []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, h.Name)
		if h.Name == "usr/bin/tool" {
			if h.Size != 1<<20 || h.Mode != 0o755 || len(data) != 1<<20 || string(data[:4]) != "head" || bytes.Count(data, []byte{0}) != 1<<20-4 {
				t.Errorf("sparse file: size %d, read %d bytes", h.Size, len(data))
			}
		}
	}
	if len(got) != 3 || got[1] != "usr/bin/tool" {
		t.Errorf("entries %q", got)
	}
}
