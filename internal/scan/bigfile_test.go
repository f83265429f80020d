package scan

import (
	"archive/tar"
	"context"
	"io"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"berth.dev/berth/internal/image"
)

// lineReader yields n bytes of log lines, made as they are read.
type lineReader struct {
	left int64
	line []byte
	pos  int
}

func (r *lineReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && r.left > 0 {
		c := copy(p[n:min(len(p), n+int(min(r.left, int64(len(r.line)-r.pos))))], r.line[r.pos:])
		n += c
		r.pos = (r.pos + c) % len(r.line)
		r.left -= int64(c)
	}
	return n, nil
}

// bigLayerTar streams a tar holding one file of size bytes of log lines
// with a token on its last line; nothing is held or written.
func bigLayerTar(size int64, last string) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		body := io.MultiReader(&lineReader{left: size, line: []byte("GET /health 200 served in 1ms by worker; auth ok, key cache warm\n")}, strings.NewReader(last))
		err := tw.WriteHeader(&tar.Header{Name: "var/log/app.log", Mode: 0o644, Size: size + int64(len(last)), Typeflag: tar.TypeReg})
		if err == nil {
			_, err = io.Copy(tw, body)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// peakRSS is the process's high-water resident set (VmHWM), in bytes.
func peakRSS(t *testing.T) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		// Not Linux: the bound cannot be measured here, the scan passed.
		t.Skipf("cannot read the peak RSS this test bounds (Linux's /proc/self/status): %v", err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("/proc/self/status has no VmHWM line: cannot check the peak RSS")
	return 0
}

// TestTwoGiBLayerBoundedMemory scans an image whose layer holds one 2 GiB
// file (generated as it is read; the layout on disk holds it gzipped,
// a few MB) for secrets and misconfigurations: the token on its last line
// is found, and the process's peak RSS stays under 256 MB.
func TestTwoGiBLayerBoundedMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		// Under -race it takes many minutes; scripts/test.sh (CI) runs it
		// in a step of its own without -race.
		t.Skip("2 GiB through gzip and the scanner, too slow under -short or -race; scripts/test.sh runs it without -race: go test -count=1 -run TestTwoGiBLayerBoundedMemory ./internal/scan/")
	}
	const size = 2 << 30
	tok := token(mrand.New(mrand.NewPCG(3, 5)), "glpat-", 20)
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return bigLayerTar(size, "token="+tok+"\n"), nil },
		tarball.WithCompressionLevel(1))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: "COPY app.log /var/log/"}})
	if err != nil {
		t.Fatal(err)
	}
	src := writeImage(t, img)
	e := secretEngine(t, "")
	e.Misconfig = true
	// The layer is 2 GiB of one repeated line: gzip packs it far past
	// the ratio that marks a bomb, which is what this test is not about.
	e.Inventory.Limits = image.Limits{MaxRatio: 1 << 20}
	r, err := e.Scan(context.Background(), src, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Secrets) != 1 || r.Secrets[0].RuleID != "gitlab-pat" || r.Secrets[0].Path != "var/log/app.log" {
		t.Fatalf("secrets %+v", r.Secrets)
	}
	if peak := peakRSS(t); peak > 256<<20 {
		t.Errorf("peak RSS %d MB, want at most 256", peak>>20)
	} else {
		t.Logf("peak RSS %d MB", peak>>20)
	}
}
