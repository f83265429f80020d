package imagetest

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
)

// ArchiveFiles returns the named files (paths without a leading slash) as
// the topmost layer of the OCI archive (an image layout in a tar, one
// manifest) holds them, reading the layers from the top down and stopping
// once all are found. It fails the test when the archive cannot be read or
// a file is not in it.
func ArchiveFiles(t testing.TB, archive string, want ...string) map[string][]byte {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// archive/tar reads the data of an entry straight from f, so the
	// offset after Next is where that entry's data starts.
	entries := map[string]*io.SectionReader{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			t.Fatal(err)
		}
		entries[strings.TrimPrefix(h.Name, "./")] = io.NewSectionReader(f, off, h.Size)
	}
	var index struct {
		Manifests []struct{ Digest string } `json:"manifests"`
	}
	var manifest struct {
		Layers []struct{ Digest string } `json:"layers"`
	}
	decode(t, entries["index.json"], &index)
	if len(index.Manifests) != 1 {
		t.Fatalf("index.json holds %d manifests", len(index.Manifests))
	}
	decode(t, entries[blobPath(index.Manifests[0].Digest)], &manifest)
	found := map[string][]byte{}
	for i := len(manifest.Layers) - 1; i >= 0 && len(found) < len(want); i-- {
		blob := entries[blobPath(manifest.Layers[i].Digest)]
		if blob == nil {
			t.Fatalf("layer %s missing", manifest.Layers[i].Digest)
		}
		zr, err := gzip.NewReader(blob)
		if err != nil {
			t.Fatal(err)
		}
		lr := tar.NewReader(zr)
		for {
			lh, err := lr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, done := found[lh.Name]; done || lh.Typeflag != tar.TypeReg || !slices.Contains(want, lh.Name) {
				continue
			}
			if found[lh.Name], err = io.ReadAll(lr); err != nil {
				t.Fatal(err)
			}
			if len(found) == len(want) {
				break
			}
		}
	}
	for _, w := range want {
		if _, ok := found[w]; !ok {
			t.Fatalf("%s not in %s", w, archive)
		}
	}
	return found
}

func decode(t testing.TB, r *io.SectionReader, v any) {
	t.Helper()
	if r == nil {
		t.Fatal("OCI layout entry missing")
	}
	if err := json.NewDecoder(r).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func blobPath(digest string) string {
	return "blobs/" + strings.Replace(digest, ":", "/", 1)
}
