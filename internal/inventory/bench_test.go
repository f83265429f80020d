package inventory_test

import (
	"context"
	"path/filepath"
	"testing"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers"
)

func benchScan(b *testing.B, cacheDir func() string) {
	src := "oci-archive:" + filepath.Join(sharedImages(b), "kitchen-sink.oci.tar")
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		cache, err := inventory.OpenCache(cacheDir())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		img, err := image.Open(context.Background(), src, image.Options{})
		if err != nil {
			b.Fatal(err)
		}
		s := &inventory.Scanner{Analyzers: analyzers.All(), Cache: cache}
		if _, err := s.Scan(context.Background(), img); err != nil {
			b.Fatal(err)
		}
		img.Close()
	}
}

// BenchmarkKitchenSinkCold inventories kitchen-sink.oci.tar with an empty
// cache: every layer is decompressed, hashed and walked.
func BenchmarkKitchenSinkCold(b *testing.B) {
	benchScan(b, func() string { return b.TempDir() })
}

// BenchmarkKitchenSinkWarm inventories it again with every layer cached.
func BenchmarkKitchenSinkWarm(b *testing.B) {
	dir := b.TempDir()
	cache, err := inventory.OpenCache(dir)
	if err != nil {
		b.Fatal(err)
	}
	scan(b, "oci-archive:"+filepath.Join(sharedImages(b), "kitchen-sink.oci.tar"), cache)
	benchScan(b, func() string { return dir })
}
