// Command scanpush measures berth serve's scan on push: the time from the
// acknowledged push of an image (its manifest PUT) until the stored report
// is done, on a fresh data directory (cold layer cache) and for an image
// whose layers but the top one were scanned before; and, under 200
// concurrent pushes of distinct images, that every pushed image gets its
// report (no job lost).
//
// It starts the berth binary given, serving ../shared/vulndata over
// loopback as the database's sources, and pushes with go-containerregistry
// as crane does. bench/scanpush.sh builds and runs it; docs/benchmarks.md
// records its output.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"berth.dev/berth/bench/benchimage"
	"berth.dev/berth/bench/benchserver"
)

// start starts berth without authentication: every push is anonymous
// here, so one "account" holds all the concurrent pushes' upload
// sessions, and the per-account caps are lifted.
func start(berth, feed string) *benchserver.Server {
	return benchserver.Start(berth, feed, "--no-auth",
		"--max-uploads-per-account", "0", "--max-upload-sessions-per-account", "0", "--max-upload-sessions-per-repository", "0")
}

func main() {
	berth := flag.String("berth", "berth", "berth binary")
	shared := flag.String("shared", "../shared", "the shared fixtures folder")
	layoutDir := flag.String("kitchen-sink", "", "kitchen-sink as an OCI layout directory (untarred kitchen-sink.oci.tar)")
	rounds := flag.Int("rounds", 5, "cold pushes (each on a fresh data directory)")
	concurrent := flag.Int("concurrent", 200, "images pushed at once in the no-lost-job check")
	flag.Parse()
	if *layoutDir == "" {
		log.Fatal("-kitchen-sink is required")
	}
	feed := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(*shared, "vulndata"))))
	defer feed.Close()
	img, err := benchimage.FromLayout(*layoutDir)
	if err != nil {
		log.Fatal(err)
	}

	var cold, warm []time.Duration
	for r := range *rounds {
		srv := start(*berth, feed.URL)
		c, w := pushRound(srv, img, r)
		cold, warm = append(cold, c), append(warm, w)
		srv.Stop()
	}
	report("push → stored report, kitchen-sink, cold layer cache", cold)
	report("push → stored report, kitchen-sink + a new top layer (the rest scanned before)", warm)

	srv := start(*berth, feed.URL)
	lost, took := concurrentPushes(srv, *concurrent)
	srv.Stop()
	fmt.Printf("%d concurrent pushes of distinct images: %d without a done report after all scans ran (%.1fs from the first push to the last report)\n",
		*concurrent, lost, took.Seconds())
}

func report(what string, ds []time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	fmt.Printf("%s: median %v, min %v, max %v (%d rounds)\n", what, s[len(s)/2].Round(time.Millisecond),
		s[0].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond), len(s))
}

// push writes img to repo:tag and returns when the manifest PUT was
// acknowledged.
func push(addr, repo, tag string, img v1.Image) {
	ref, err := name.ParseReference(addr+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		log.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		log.Fatal(err)
	}
}

func pushRound(s *benchserver.Server, img v1.Image, round int) (cold, warm time.Duration) {
	push(s.Addr, "bench/kitchen-sink", "latest", img)
	start := time.Now()
	s.WaitReport("bench/kitchen-sink", "latest")
	cold = time.Since(start)

	next, err := mutate.AppendLayers(img, topLayer(fmt.Sprintf("round %d %d", round, time.Now().UnixNano())))
	if err != nil {
		log.Fatal(err)
	}
	push(s.Addr, "bench/app", "latest", next)
	start = time.Now()
	s.WaitReport("bench/app", "latest")
	return cold, time.Since(start)
}

// topLayer is a tar layer holding one file.
func topLayer(content string) v1.Layer {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "app/VERSION", Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
	tw.Write([]byte(content))
	tw.Close()
	return static.NewLayer(buf.Bytes(), types.OCIUncompressedLayer)
}

func concurrentPushes(s *benchserver.Server, n int) (lost int, took time.Duration) {
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, err := random.Image(512, 2)
			if err != nil {
				log.Fatal(err)
			}
			push(s.Addr, "bench/many", fmt.Sprint("i", i), img)
		}()
	}
	wg.Wait()
	for i := range n {
		path := benchserver.ReportPath("bench/many", fmt.Sprint("i", i))
		done := false
		for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			var r struct{ Scan struct{ Status string } }
			if s.Get(path, &r) == 200 && (r.Scan.Status == "done" || r.Scan.Status == "failed") {
				done = r.Scan.Status == "done"
				break
			}
		}
		if !done {
			lost++
		}
	}
	return lost, time.Since(start)
}
