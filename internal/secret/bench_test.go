package secret

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers"
	"berth.dev/berth/internal/testpeers"
)

// BenchmarkScanText scans Go's own source tree (text with every keyword
// a program uses: key, token, secret, auth, password), as one stream per
// file: the throughput figure of docs/benchmarks.md.
func BenchmarkScanText(b *testing.B) {
	root := filepath.Join(runtime.GOROOT(), "src", "net")
	var files [][]byte
	var total int64
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err == nil {
			files = append(files, data)
			total += int64(len(data))
		}
		return nil
	})
	rs, err := Default()
	if err != nil {
		b.Fatal(err)
	}
	s := rs.NewFileScanner()
	b.SetBytes(total)
	b.ResetTimer()
	for range b.N {
		for _, f := range files {
			s.ScanFile("src/x.go", bytes.NewReader(f))
		}
	}
}

// BenchmarkScanDenseKeywords is the worst case of the keyword prefilter:
// every few bytes a keyword, on log lines shaped like assignments.
func BenchmarkScanDenseKeywords(b *testing.B) {
	line := "auth=ok user=svc token_ttl=3600 key_id=k1 secret_ref=vault:db api=v2\n"
	data := []byte(strings.Repeat(line, (4<<20)/len(line)))
	rs, _ := Default()
	s := rs.NewFileScanner()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		s.ScanFile("var/log/app.log", bytes.NewReader(data))
	}
}

// BenchmarkLoadRules is the first use's cost: parsing both rule files.
func BenchmarkLoadRules(b *testing.B) {
	for range b.N {
		if _, err := Load(nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScanLogLines: plain log lines that mention auth and keys.
func BenchmarkScanLogLines(b *testing.B) {
	line := "log line: request served, auth ok, key cache warm\n"
	data := []byte(strings.Repeat(line, (4<<20)/len(line)))
	rs, _ := Default()
	s := rs.NewFileScanner()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		s.ScanFile("var/log/app.log", bytes.NewReader(data))
	}
}

// BenchmarkKitchenSinkCold inventories kitchen-sink with no cache, with
// and without the secret pass: the difference is what secret scanning
// adds to a cold `berth scan`.
func BenchmarkKitchenSinkCold(b *testing.B) {
	src := "oci-archive:" + testpeers.Shared(b, "images", "kitchen-sink.oci.tar")
	rs, _ := Default()
	for _, withSecrets := range []bool{false, true} {
		name := "inventory"
		if withSecrets {
			name = "inventory+secrets"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				img, err := image.Open(context.Background(), src, image.Options{})
				if err != nil {
					b.Fatal(err)
				}
				s := &inventory.Scanner{Analyzers: analyzers.All()}
				if withSecrets {
					s.Passes = []inventory.Pass{NewPass(rs)}
				}
				if _, err := s.Scan(context.Background(), img); err != nil {
					b.Fatal(err)
				}
				img.Close()
			}
		})
	}
}
