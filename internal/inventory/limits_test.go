package inventory_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/image/imagetest"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers"
)

// rawLayer is a layer made of the tar that write produces; write gets the
// tar.Writer and the writer under it, for entries archive/tar cannot
// write itself (see imagetest.WriteSparse).
func rawLayer(t *testing.T, write func(tw *tar.Writer, w io.Writer) error) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := write(tw, &buf); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// symlinks is a layer of n symlinks dir/000000… with targets of
// targetLen bytes.
func symlinks(t *testing.T, dir string, n, targetLen int) v1.Layer {
	target := "/" + strings.Repeat("t", targetLen-1)
	return rawLayer(t, func(tw *tar.Writer, _ io.Writer) error {
		for i := range n {
			h := &tar.Header{Name: fmt.Sprintf("%s/%06d", dir, i), Typeflag: tar.TypeSymlink, Linkname: target}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestScanBoundsSymlinks: every layer's symlinks are kept for the scan (a
// file reached through one, in any layer, must be found). 200,000 links
// with 10 KB targets took berth sbom to 2.8 GiB; what is kept is now
// bounded per layer (image.Limits.MaxLinkBytes) and per image
// (Scanner.MaxLinkBytes), and measured.
func TestScanBoundsSymlinks(t *testing.T) {
	const pathLen = len("a/000000")
	tests := []struct {
		name     string
		layers   []v1.Layer
		maxImage int64
		kept     int64  // Stats.LinkBytes
		err      string // "" for a scan that succeeds
		warnings int
	}{
		{"targets no system resolves are not kept", []v1.Layer{symlinks(t, "a", 2000, 10_000)}, 1 << 20, 0, "", 101},
		{"two layers within the image's bound", []v1.Layer{symlinks(t, "a", 200, 4000), symlinks(t, "b", 200, 4000)},
			2 << 20, 2 * 200 * int64(pathLen+4000), "", 0},
		{"two layers past it", []v1.Layer{symlinks(t, "a", 200, 4000), symlinks(t, "b", 200, 4000)},
			1 << 20, 0, "Scanner.MaxLinkBytes", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stats inventory.ScanStats
			s := &inventory.Scanner{Analyzers: analyzers.All(), MaxLinkBytes: tt.maxImage, Stats: &stats}
			inv, err := s.Scan(context.Background(), synthetic(t, nil, tt.layers...))
			if tt.err != "" {
				if !errors.Is(err, image.ErrLimit) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want ErrLimit naming %s", err, tt.err)
				}
				if stats.LinkBytes > tt.maxImage+int64(200*(pathLen+4000)) {
					t.Errorf("%d bytes of links kept past the bound", stats.LinkBytes)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if stats.LinkBytes != tt.kept {
				t.Errorf("links kept: %d bytes, want %d", stats.LinkBytes, tt.kept)
			}
			if len(inv.Warnings) != tt.warnings {
				t.Errorf("%d warnings, want %d: %.300q", len(inv.Warnings), tt.warnings, inv.Warnings)
			}
		})
	}
}

// sparse is one sparse file of a test layer.
type sparse struct {
	name    string
	perm    int64
	logical int64
	data    string
}

func sparseFiles(t *testing.T, files ...sparse) v1.Layer {
	return rawLayer(t, func(tw *tar.Writer, w io.Writer) error {
		for _, f := range files {
			if err := imagetest.WriteSparse(tw, w, f.name, f.perm, f.logical, []byte(f.data)); err != nil {
				return err
			}
		}
		return nil
	})
}

// The layer of issue 10 item 7: about 10 KB, four 1 GiB sparse "tools"
// and a 2 GiB sparse dpkg status. berth sbom wrote 6,129 MiB of it to
// TMPDIR.
func issueSparseLayer(t *testing.T) v1.Layer {
	return sparseFiles(t,
		sparse{"usr/bin/tool1", 0o755, 1 << 30, "\x7fELF"},
		sparse{"usr/bin/tool2", 0o755, 1 << 30, "\x7fELF"},
		sparse{"usr/bin/tool3", 0o755, 1 << 30, "\x7fELF"},
		sparse{"usr/bin/tool4", 0o755, 1 << 30, "\x7fELF"},
		sparse{"var/lib/dpkg/status", 0o644, 2 << 30, stanza("a", "1")},
	)
}

// TestScanSparseLayerIsABomb: with the default limits, the issue's layer
// is refused as a decompression bomb before a byte is spooled.
func TestScanSparseLayerIsABomb(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	var stats inventory.ScanStats
	s := &inventory.Scanner{Analyzers: analyzers.All(), Stats: &stats}
	_, err := s.Scan(context.Background(), synthetic(t, nil, issueSparseLayer(t)))
	if !errors.Is(err, image.ErrLimit) || !strings.Contains(err.Error(), "sparse") || !strings.Contains(err.Error(), "MaxRatio") {
		t.Fatalf("error %v; want the ratio limit, naming the sparse files", err)
	}
	if stats.SpoolWritten != 0 {
		t.Errorf("%d bytes spooled", stats.SpoolWritten)
	}
}

// TestScanSparseFilesPastTheRatio: a layer with enough real content to
// pass the ratio limit (modelled by raising it) still cannot make the
// scan write gigabytes: a file larger than its analyzer reads is skipped,
// and spooling stops at the scan's budget; each skip is a warning and the
// scan goes on.
func TestScanSparseFilesPastTheRatio(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	const budget = 16 << 20
	layer := sparseFiles(t,
		sparse{"etc/os-release", 0o644, 1 << 10, "ID=debian\nVERSION_ID=12\n"},
		sparse{"usr/bin/tool1", 0o755, 6 << 20, "\x7fELF"},
		sparse{"usr/bin/tool2", 0o755, 6 << 20, "\x7fELF"},
		sparse{"usr/bin/tool3", 0o755, 6 << 20, "\x7fELF"},
		sparse{"usr/bin/tool4", 0o755, 6 << 20, "\x7fELF"},
		sparse{"usr/bin/huge", 0o755, 2 << 30, "\x7fELF"},
		sparse{"var/lib/dpkg/status", 0o644, 2 << 30, stanza("a", "1")},
	)
	var stats inventory.ScanStats
	s := &inventory.Scanner{
		Analyzers: analyzers.All(), Limits: image.Limits{MaxRatio: 1 << 40},
		MaxSpoolBytes: budget, Stats: &stats,
	}
	inv, err := s.Scan(context.Background(), synthetic(t, nil, layer))
	if err != nil {
		t.Fatal(err)
	}
	// tool1 and tool2 fit the budget; tool3 and tool4 would pass it.
	if stats.SpoolWritten != 12<<20 || stats.SpoolPeak > budget || stats.SpoolSkipped != 2 {
		t.Errorf("spooled %d bytes, peak %d, %d files skipped; want 12 MiB, at most %d, 2", stats.SpoolWritten, stats.SpoolPeak, stats.SpoolSkipped, budget)
	}
	if inv.Distro == nil || inv.Distro.ID != "debian" {
		t.Errorf("distro %+v: the scan must go on past the skipped files", inv.Distro)
	}
	if len(inv.Packages) != 0 {
		t.Errorf("packages %q from a status file that was not read", names(inv))
	}
	want := []string{
		"dpkg: /var/lib/dpkg/status skipped: 2147483648 bytes, more than the 67108864 it reads from one file",
		"gobinary: /usr/bin/huge skipped: 2147483648 bytes, more than the 1073741824 it reads from one file",
		"cargo-auditable: /usr/bin/huge skipped: 2147483648 bytes",
		"gobinary: /usr/bin/tool3 skipped: 6291456 bytes, more than this layer may still spool",
		"gobinary: /usr/bin/tool4 skipped: 6291456 bytes",
		"cargo-auditable: /usr/bin/tool4 skipped: 6291456 bytes",
	}
	all := strings.Join(inv.Warnings, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("no warning %q in\n%s", w, all)
		}
	}
}

// binaries is an analyzer that reads every file under usr/bin/ to the
// end and records what it read.
type binaries struct {
	mu   *sync.Mutex
	read map[string]int64
}

func newBinaries() binaries { return binaries{mu: &sync.Mutex{}, read: map[string]int64{}} }

func (binaries) Name() string                          { return "binaries" }
func (binaries) Version() int                          { return 1 }
func (binaries) MaxFileBytes() int64                   { return 1 << 30 }
func (binaries) Required(p string, _ fs.FileInfo) bool { return strings.HasPrefix(p, "usr/bin/") }
func (b binaries) Analyze(_ context.Context, files fs.FS) (*inventory.Result, error) {
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := files.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.Copy(io.Discard, f)
		b.mu.Lock()
		b.read[p] = n
		b.mu.Unlock()
		return err
	})
	return &inventory.Result{}, err
}

func (b binaries) names() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := slices.Collect(maps.Keys(b.read))
	slices.Sort(out)
	return out
}

// TestSpoolBudgetSharedByParallelLayers: four layers read at once each
// spool 12 MiB under a 16 MiB budget. Whichever layers happen to be read
// together, none loses a file to the others (a layer that finds the budget
// held by others is read again, alone), and the disk held at once stays
// within the budget.
func TestSpoolBudgetSharedByParallelLayers(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	var layers []v1.Layer
	var want []string
	for i := range 4 {
		a, b := fmt.Sprintf("usr/bin/l%d-a", i), fmt.Sprintf("usr/bin/l%d-b", i)
		layers = append(layers, sparseFiles(t, sparse{a, 0o755, 6 << 20, "a"}, sparse{b, 0o755, 6 << 20, "b"}))
		want = append(want, a, b)
	}
	rec := newBinaries()
	var stats inventory.ScanStats
	s := &inventory.Scanner{Analyzers: []inventory.Analyzer{rec}, Parallel: 4, MaxSpoolBytes: 16 << 20, Stats: &stats}
	inv, err := s.Scan(context.Background(), synthetic(t, nil, layers...))
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.names(); !slices.Equal(got, want) {
		t.Errorf("read %q, want %q", got, want)
	}
	for p, n := range rec.read {
		if n != 6<<20 {
			t.Errorf("%s: read %d bytes", p, n)
		}
	}
	if stats.SpoolPeak > 16<<20 || stats.SpoolSkipped != 0 || len(inv.Warnings) != 0 {
		t.Errorf("peak %d bytes, %d skipped, warnings %q", stats.SpoolPeak, stats.SpoolSkipped, inv.Warnings)
	}
	t.Logf("%d layers read again alone; %d bytes spooled in all", stats.Rereads, stats.SpoolWritten)
}

// TestSpoolSkipIsNotCached: a file skipped for the spool budget is read by
// a later scan with a larger budget; the shortened result was not cached.
func TestSpoolSkipIsNotCached(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	cache, err := inventory.OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	layer := sparseFiles(t, sparse{"usr/bin/a", 0o755, 6 << 20, "a"}, sparse{"usr/bin/b", 0o755, 6 << 20, "b"})
	for _, tt := range []struct {
		budget int64
		want   []string
		warn   string
	}{
		{8 << 20, []string{"usr/bin/a"}, "binaries: /usr/bin/b skipped: 6291456 bytes, more than this layer may still spool"},
		{16 << 20, []string{"usr/bin/a", "usr/bin/b"}, ""},
	} {
		rec := newBinaries()
		s := &inventory.Scanner{Analyzers: []inventory.Analyzer{rec}, Cache: cache, MaxSpoolBytes: tt.budget}
		inv, err := s.Scan(context.Background(), synthetic(t, nil, layer))
		if err != nil {
			t.Fatal(err)
		}
		if got := rec.names(); !slices.Equal(got, tt.want) {
			t.Errorf("budget %d: read %q, want %q", tt.budget, got, tt.want)
		}
		if got := strings.Join(inv.Warnings, "\n"); tt.warn == "" && got != "" || !strings.Contains(got, tt.warn) {
			t.Errorf("budget %d: warnings %q, want %q", tt.budget, got, tt.warn)
		}
	}
}
