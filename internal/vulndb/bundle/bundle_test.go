package bundle_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"berth.dev/berth/internal/vulndb"
	"berth.dev/berth/internal/vulndb/bundle"
	"berth.dev/berth/internal/vulndb/update"
)

var now = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

// newDB updates a DB from a one-record OSV folder.
func newDB(t *testing.T, id string) string {
	t.Helper()
	feed := t.TempDir()
	os.MkdirAll(filepath.Join(feed, "npm"), 0o755)
	f, _ := os.Create(filepath.Join(feed, "npm", "all.zip"))
	zw := zip.NewWriter(f)
	w, _ := zw.Create(id + ".json")
	w.Write([]byte(`{"id":"` + id + `","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"left-pad"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.1"}]}]}]}`))
	zw.Close()
	f.Close()
	dir := t.TempDir()
	if _, err := update.Run(context.Background(), update.Options{Dir: dir, Sources: []string{feed}, Now: func() time.Time { return now }}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func export(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	m, err := bundle.Export(context.Background(), dir, &buf, now)
	if err != nil {
		t.Fatal(err)
	}
	if m.Info.Records != 1 || len(m.Files) != 1 || m.Files[0].Name != vulndb.FileName {
		t.Fatalf("manifest %+v", m)
	}
	return buf.Bytes()
}

func importInto(t *testing.T, dir string, b []byte) (*vulndb.Info, error) {
	t.Helper()
	ws, err := vulndb.OpenWorkspace(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	return bundle.Import(context.Background(), bytes.NewReader(b), ws)
}

func ids(t *testing.T, dir string) string {
	t.Helper()
	db, err := vulndb.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	vs, err := db.Vulnerabilities(context.Background(), "npm", "left-pad")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range vs {
		out = append(out, v.ID)
	}
	return strings.Join(out, ",")
}

func TestExportImport(t *testing.T) {
	b := export(t, newDB(t, "SRC-1"))
	dest := newDB(t, "DEST-1")
	info, err := importInto(t, dest, b)
	if err != nil {
		t.Fatal(err)
	}
	if info.Records != 1 || !info.UpdatedAt.Equal(now) {
		t.Errorf("imported info %+v", info)
	}
	if got := ids(t, dest); got != "SRC-1" {
		t.Errorf("after import: %s, want SRC-1", got)
	}
	// Into a directory that has no DB yet.
	fresh := filepath.Join(t.TempDir(), "new")
	if _, err := importInto(t, fresh, b); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, fresh); got != "SRC-1" {
		t.Errorf("fresh import: %s", got)
	}
}

// rewrite decodes a bundle, lets edit change its entries, and encodes it again.
func rewrite(t *testing.T, b []byte, edit func(name string, data []byte) []byte) []byte {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	var out bytes.Buffer
	zw, _ := zstd.NewWriter(&out)
	tw := tar.NewWriter(zw)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		data = edit(hdr.Name, data)
		if data == nil {
			continue
		}
		hdr.Size = int64(len(data))
		tw.WriteHeader(hdr)
		tw.Write(data)
	}
	tw.Close()
	zw.Close()
	return out.Bytes()
}

func TestImportRejects(t *testing.T) {
	good := export(t, newDB(t, "SRC-1"))
	tests := map[string]struct {
		bundle []byte
		want   string
	}{
		"checksum mismatch": {rewrite(t, good, func(name string, data []byte) []byte {
			if name == "manifest.json" {
				var m bundle.Manifest
				json.Unmarshal(data, &m)
				m.Files[0].SHA256 = strings.Repeat("0", 64)
				data, _ = json.Marshal(m)
			}
			return data
		}), "checksum mismatch"},
		"database altered": {rewrite(t, good, func(name string, data []byte) []byte {
			if name == vulndb.FileName {
				data[len(data)-1] ^= 0xff
			}
			return data
		}), "checksum mismatch"},
		"no manifest": {rewrite(t, good, func(name string, data []byte) []byte {
			if name == "manifest.json" {
				return nil
			}
			return data
		}), "no manifest"},
		"truncated":    {good[:len(good)/2], ""},
		"not a bundle": {[]byte("hello"), "not a bundle"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			dest := newDB(t, "DEST-1")
			_, err := importInto(t, dest, tt.bundle)
			if err == nil {
				t.Fatal("import succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
			if got := ids(t, dest); got != "DEST-1" {
				t.Errorf("after a rejected import the DB answers %s, want DEST-1", got)
			}
			entries, _ := os.ReadDir(dest)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".build-") {
					t.Errorf("left behind %s", e.Name())
				}
			}
		})
	}
}

func TestExportWithoutDB(t *testing.T) {
	_, err := bundle.Export(context.Background(), t.TempDir(), io.Discard, now)
	if err == nil || !strings.Contains(err.Error(), "no vulnerability database") {
		t.Fatalf("err = %v", err)
	}
}
