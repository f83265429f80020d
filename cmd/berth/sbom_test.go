package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/image/imagetest"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/testpeers"
)

func TestSBOMCommand(t *testing.T) {
	img := testpeers.Shared(t, "images", "debian-bookworm-minbase.oci.tar")
	out := filepath.Join(t.TempDir(), "sbom.json")
	cmd := newSBOMCmd()
	cmd.SetArgs([]string{"--cache-dir", t.TempDir(), "--format", "json", "-o", out, "oci-archive:" + img})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var inv inventory.Inventory
	if err := json.Unmarshal(data, &inv); err != nil {
		t.Fatal(err)
	}
	if len(inv.Packages) != 88 || inv.Distro == nil || inv.Distro.ID != "debian" {
		t.Errorf("%d packages, distro %+v; want the 88 Debian packages", len(inv.Packages), inv.Distro)
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o644 {
		t.Errorf("output mode %v", st.Mode())
	}
}

func TestSBOMCommandBadInput(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--format", "xml", "x"}, "unknown format"},
		{[]string{"--no-cache", "oci-archive:" + filepath.Join(t.TempDir(), "missing.tar")}, "no such file"},
		{[]string{"--no-cache", "--platform", "amd64", "dir:" + t.TempDir()}, "platform"},
	}
	for _, tt := range tests {
		cmd := newSBOMCmd()
		cmd.SetArgs(tt.args)
		err := cmd.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want one containing %q", tt.args, err, tt.want)
		}
	}
}

// Without a usable default cache directory the scan goes on uncached.
func TestSBOMWithoutUsableCache(t *testing.T) {
	img := testpeers.Shared(t, "images", "debian-bookworm-minbase.oci.tar")
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BERTH_CACHE_DIR", filepath.Join(blocker, "cache")) // under a file: cannot be created
	cmd := newSBOMCmd()
	cmd.SetArgs([]string{"-f", "json", "-o", filepath.Join(t.TempDir(), "out.json"), "oci-archive:" + img})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Errorf("default cache unusable: %v", err)
	}
	cmd = newSBOMCmd()
	cmd.SetArgs([]string{"--cache-dir", filepath.Join(blocker, "cache"), "-f", "json", "oci-archive:" + img})
	if err := cmd.ExecuteContext(context.Background()); err == nil {
		t.Error("an explicit --cache-dir that cannot be created was ignored")
	}
}

// TestSBOMWarnsOfSkippedFiles: a 2 GiB dpkg status (sparse on disk here,
// as in the layer of issue 10) is not read, and berth sbom says so.
func TestSBOMWarnsOfSkippedFiles(t *testing.T) {
	root := t.TempDir()
	status := filepath.Join(root, "var", "lib", "dpkg", "status")
	if err := os.MkdirAll(filepath.Dir(status), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(status, []byte("Package: a\nStatus: install ok installed\nVersion: 1\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(status, 2<<30); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "sbom.json")
	var stderr strings.Builder
	cmd := newSBOMCmd()
	cmd.SetErr(&stderr)
	cmd.SetArgs([]string{"--no-cache", "-f", "json", "-o", out, "dir:" + root})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := "dpkg: /var/lib/dpkg/status skipped: 2147483648 bytes, more than the 67108864 it reads from one file"
	if !strings.Contains(stderr.String(), "warning: ") || !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q, want a warning %q", stderr.String(), want)
	}
	var inv inventory.Inventory
	if err := json.Unmarshal([]byte(readTestFile(t, out)), &inv); err != nil {
		t.Fatal(err)
	}
	if len(inv.Packages) != 0 || len(inv.Warnings) != 1 {
		t.Errorf("packages %v, warnings %q", inv.Packages, inv.Warnings)
	}
}

// TestSBOMRefusesSparseBomb is issue 10's attack as a user meets it: a
// 10 KB image of sparse files declaring 6 GiB (four 1 GiB "tools", a 2 GiB
// dpkg status) made berth sbom write 6,129 MiB to TMPDIR. It is now
// refused as a decompression bomb, naming the limit, and TMPDIR holds
// nothing afterwards.
func TestSBOMRefusesSparseBomb(t *testing.T) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, f := range []struct {
		name string
		size int64
	}{
		{"usr/bin/tool1", 1 << 30}, {"usr/bin/tool2", 1 << 30}, {"usr/bin/tool3", 1 << 30}, {"usr/bin/tool4", 1 << 30},
		{"var/lib/dpkg/status", 2 << 30},
	} {
		if err := imagetest.WriteSparse(tw, &raw, f.name, 0o755, f.size, []byte("Package: a\nVersion: 1\n")); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	out := filepath.Join(t.TempDir(), "sbom.json")
	cmd := newSBOMCmd()
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"--no-cache", "-o", out, "oci-dir:" + dir})
	err = cmd.ExecuteContext(context.Background())
	if !errors.Is(err, image.ErrLimit) || !strings.Contains(err.Error(), "sparse") || !strings.Contains(err.Error(), "limit MaxRatio") {
		t.Fatalf("error %v; want the decompression limit, naming the sparse files", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("-o file written after a refused scan: %v", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("TMPDIR holds %d files afterwards", len(left))
	}
}
