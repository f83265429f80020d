package fsck_test

import (
	"bytes"
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/blob/filesystem"
	"berth.dev/berth/internal/meta/sqlite"
	"berth.dev/berth/internal/registry"
	"berth.dev/berth/internal/registry/fsck"
)

// setup pushes one image through a real registry and returns the data
// directory with the stores closed, plus the image's parts.
func setup(t *testing.T) (dir string, config, layer []byte, manifest digest.Digest) {
	t.Helper()
	dir = t.TempDir()
	bs, err := filesystem.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := sqlite.Open(context.Background(), filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Options{Blobs: bs, Meta: ms})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	defer ms.Close()
	config, layer = []byte(`{"os":"linux"}`), bytes.Repeat([]byte("layer"), 100)
	for _, b := range [][]byte{config, layer} {
		resp, err := http.Post(srv.URL+"/v2/r/blobs/uploads/?digest="+digest.FromBytes(b).String(), "application/octet-stream", bytes.NewReader(b))
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("push blob: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	m := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		digest.FromBytes(config).String() + `","size":` + strconv.Itoa(len(config)) + `},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` +
		digest.FromBytes(layer).String() + `","size":` + strconv.Itoa(len(layer)) + `}]}`)
	req, _ := http.NewRequest("PUT", srv.URL+"/v2/r/manifests/v1", bytes.NewReader(m))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("push manifest: %v %v", err, resp)
	}
	resp.Body.Close()
	return dir, config, layer, digest.FromBytes(m)
}

func check(t *testing.T, dir string, opts fsck.Options) fsck.Report {
	t.Helper()
	bs, err := filesystem.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := sqlite.Open(context.Background(), filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	rep, err := fsck.Run(context.Background(), ms, bs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func blobPath(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", "sha256", d.Encoded()[:2], d.Encoded())
}

func kinds(rep fsck.Report) []string {
	var out []string
	for _, p := range rep.Problems {
		out = append(out, p.Kind)
	}
	return out
}

func TestCleanStore(t *testing.T) {
	dir, _, _, _ := setup(t)
	rep := check(t, dir, fsck.Options{})
	if len(rep.Problems) != 0 || rep.Blobs != 2 || rep.Manifests != 1 {
		t.Errorf("clean store: %+v", rep)
	}
}

func TestFindsProblems(t *testing.T) {
	tests := []struct {
		name      string
		damage    func(t *testing.T, dir string, config, layer []byte, m digest.Digest)
		opts      fsck.Options
		want      []string
		wantStray int
	}{
		{"corrupt blob content", func(t *testing.T, dir string, _, layer []byte, _ digest.Digest) {
			bad := bytes.ToUpper(layer)
			if err := os.WriteFile(blobPath(dir, digest.FromBytes(layer)), bad, 0o644); err != nil {
				t.Fatal(err)
			}
		}, fsck.Options{}, []string{fsck.KindCorruptBlob}, 0},
		{"same corruption, sizes only", func(t *testing.T, dir string, _, layer []byte, _ digest.Digest) {
			os.WriteFile(blobPath(dir, digest.FromBytes(layer)), bytes.ToUpper(layer), 0o644)
		}, fsck.Options{SkipContent: true}, nil, 0},
		{"truncated blob", func(t *testing.T, dir string, _, layer []byte, _ digest.Digest) {
			os.WriteFile(blobPath(dir, digest.FromBytes(layer)), layer[:10], 0o644)
		}, fsck.Options{SkipContent: true}, []string{fsck.KindSizeMismatch}, 0},
		{"missing config", func(t *testing.T, dir string, config, _ []byte, _ digest.Digest) {
			os.Remove(blobPath(dir, digest.FromBytes(config)))
		}, fsck.Options{}, []string{fsck.KindMissingBlob, fsck.KindMissingBlob}, 0},
		{"corrupt manifest bytes", func(t *testing.T, dir string, _, _ []byte, m digest.Digest) {
			db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "meta.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec("UPDATE manifests SET content = CAST('{}' AS BLOB) WHERE digest = ?", m.String()); err != nil {
				t.Fatal(err)
			}
		}, fsck.Options{}, []string{fsck.KindCorruptManifest}, 0},
		{"layer lost after the push (collected by an older berth)", func(t *testing.T, dir string, _, layer []byte, _ digest.Digest) {
			// What a collection that ignored the manifest left: no link,
			// no record, no file.
			d := digest.FromBytes(layer)
			db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "meta.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for _, q := range []string{"DELETE FROM repository_blobs WHERE digest = ?", "DELETE FROM blobs WHERE digest = ?"} {
				if _, err := db.Exec(q, d.String()); err != nil {
					t.Fatal(err)
				}
			}
			os.Remove(blobPath(dir, d))
		}, fsck.Options{}, []string{fsck.KindMissingBlob}, 0},
		{"stray file is garbage, not a problem", func(t *testing.T, dir string, _, _ []byte, _ digest.Digest) {
			stray := []byte("stray")
			p := blobPath(dir, digest.FromBytes(stray))
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, stray, 0o644)
		}, fsck.Options{}, nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, config, layer, m := setup(t)
			tc.damage(t, dir, config, layer, m)
			rep := check(t, dir, tc.opts)
			if rep.StrayFiles != tc.wantStray {
				t.Errorf("stray files %d, want %d", rep.StrayFiles, tc.wantStray)
			}
			got := kinds(rep)
			if len(got) != len(tc.want) {
				t.Fatalf("problems %v, want %v", rep.Problems, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("problem %d is %s, want %s", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// setRecordedSize overwrites the size the meta store holds for d, as the
// upload that claimed a known digest with a lying Content-Length once did.
func setRecordedSize(t *testing.T, dir string, d digest.Digest, size int64) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("UPDATE blobs SET size = ? WHERE digest = ?", size, d.String()); err != nil {
		t.Fatal(err)
	}
}

func TestRepairsRecordedSize(t *testing.T) {
	tests := []struct {
		name         string
		damage       func(t *testing.T, dir string, layer []byte)
		opts         fsck.Options
		wantRepaired bool
	}{
		{"a wrong recorded size is corrected from verified content", func(t *testing.T, dir string, layer []byte) {
			setRecordedSize(t, dir, digest.FromBytes(layer), 9000000000000000000)
		}, fsck.Options{Repair: true}, true},
		{"reported, not changed, without --repair", func(t *testing.T, dir string, layer []byte) {
			setRecordedSize(t, dir, digest.FromBytes(layer), 5)
		}, fsck.Options{}, false},
		{"never from content that was not hashed", func(t *testing.T, dir string, layer []byte) {
			setRecordedSize(t, dir, digest.FromBytes(layer), 5)
		}, fsck.Options{Repair: true, SkipContent: true}, false},
		{"never from a truncated file", func(t *testing.T, dir string, layer []byte) {
			os.WriteFile(blobPath(dir, digest.FromBytes(layer)), layer[:10], 0o600)
		}, fsck.Options{Repair: true}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, _, layer, _ := setup(t)
			tc.damage(t, dir, layer)
			rep := check(t, dir, tc.opts)
			var mismatch *fsck.Problem
			for i, p := range rep.Problems {
				if p.Kind == fsck.KindSizeMismatch {
					mismatch = &rep.Problems[i]
				}
			}
			if mismatch == nil {
				t.Fatalf("no size mismatch reported: %v", rep.Problems)
			}
			if mismatch.Repaired != tc.wantRepaired {
				t.Errorf("repaired = %v, want %v", mismatch.Repaired, tc.wantRepaired)
			}
			again := check(t, dir, fsck.Options{SkipContent: true})
			fixed := true
			for _, p := range again.Problems {
				if p.Kind == fsck.KindSizeMismatch {
					fixed = false
				}
			}
			if fixed != tc.wantRepaired {
				t.Errorf("after the run, size fixed = %v, want %v (problems %v)", fixed, tc.wantRepaired, again.Problems)
			}
			if tc.wantRepaired && again.Unrepaired() != 0 {
				t.Errorf("problems left after repair: %v", again.Problems)
			}
		})
	}
}

// A layer never uploaded (a sparse image) is not damage; it is counted.
func TestSparseReferencesAreNotProblems(t *testing.T) {
	dir := t.TempDir()
	bs, err := filesystem.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := sqlite.Open(context.Background(), filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Options{Blobs: bs, Meta: ms})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	config, layer := []byte(`{"os":"linux"}`), []byte("a layer this registry never held")
	resp, err := http.Post(srv.URL+"/v2/r/blobs/uploads/?digest="+digest.FromBytes(config).String(), "application/octet-stream", bytes.NewReader(config))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("push config: %v %v", err, resp)
	}
	resp.Body.Close()
	m := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		digest.FromBytes(config).String() + `","size":` + strconv.Itoa(len(config)) + `},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` +
		digest.FromBytes(layer).String() + `","size":` + strconv.Itoa(len(layer)) + `}]}`)
	req, _ := http.NewRequest("PUT", srv.URL+"/v2/r/manifests/sparse", bytes.NewReader(m))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("push sparse manifest: %v %v", err, resp)
	}
	resp.Body.Close()
	srv.Close()
	ms.Close()
	rep := check(t, dir, fsck.Options{})
	if len(rep.Problems) != 0 || rep.SparseReferences != 1 {
		t.Errorf("sparse image: problems %v, sparse references %d; want none and 1", rep.Problems, rep.SparseReferences)
	}
}
