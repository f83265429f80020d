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
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
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
)

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
	img := kitchenSink(*layoutDir)

	var cold, warm []time.Duration
	for r := range *rounds {
		srv := start(*berth, feed.URL)
		c, w := pushRound(srv, img, r)
		cold, warm = append(cold, c), append(warm, w)
		srv.stop()
	}
	report("push → stored report, kitchen-sink, cold layer cache", cold)
	report("push → stored report, kitchen-sink + a new top layer (the rest scanned before)", warm)

	srv := start(*berth, feed.URL)
	lost, took := concurrentPushes(srv, *concurrent)
	srv.stop()
	fmt.Printf("%d concurrent pushes of distinct images: %d without a done report after all scans ran (%.1fs from the first push to the last report)\n",
		*concurrent, lost, took.Seconds())
}

func report(what string, ds []time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	fmt.Printf("%s: median %v, min %v, max %v (%d rounds)\n", what, s[len(s)/2].Round(time.Millisecond),
		s[0].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond), len(s))
}

func kitchenSink(dir string) v1.Image {
	img, err := benchimage.FromLayout(dir)
	if err != nil {
		log.Fatal(err)
	}
	return img
}

type server struct {
	addr string
	cmd  *exec.Cmd
	data string
}

func start(berth, feed string) *server {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	data, _ := os.MkdirTemp("", "scanpush-")
	// Every push is anonymous here, so one "account" holds all the
	// concurrent pushes' upload sessions: lift the per-account caps.
	cmd := exec.Command(berth, "serve", "--addr", addr, "--data", data, "--no-auth", "--db-update-interval", "0",
		"--max-uploads-per-account", "0", "--max-upload-sessions-per-account", "0", "--max-upload-sessions-per-repository", "0",
		"--db-source", feed+"/osv", "--db-source", "nodejs-wg:"+feed+"/nodejs-security-wg/vuln.zip")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	s := &server{addr: addr, cmd: cmd, data: data}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			log.Fatalf("berth did not start:\n%s", logs.String())
		}
	}
	// The database is built before anything is measured.
	post(addr, "/api/v1/vulndb/update")
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var st struct{ Ready bool }
		get(addr, "/api/v1/vulndb", &st)
		if st.Ready {
			break
		}
		if time.Now().After(deadline) {
			log.Fatalf("no vulnerability database:\n%s", logs.String())
		}
	}
	return s
}

func (s *server) stop() {
	s.cmd.Process.Signal(os.Interrupt)
	s.cmd.Wait()
	os.RemoveAll(s.data)
}

func post(addr, path string) {
	resp, err := http.Post("http://"+addr+path, "application/json", nil)
	if err != nil {
		log.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func get(addr, path string, v any) int {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == 200 {
		json.NewDecoder(resp.Body).Decode(v)
	}
	return resp.StatusCode
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

// waitDone polls the stored report until its scan is done.
func waitDone(addr, repo, tag string) {
	project, rest, _ := strings.Cut(repo, "/")
	path := "/api/v1/projects/" + project + "/repositories/" + rest + "/artifacts/" + tag + "/vulnerabilities"
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
		var r struct {
			Scan struct{ Status, Error string }
		}
		if get(addr, path, &r) == 200 {
			switch r.Scan.Status {
			case "done":
				return
			case "failed":
				log.Fatalf("scan of %s:%s failed: %s", repo, tag, r.Scan.Error)
			}
		}
		if time.Now().After(deadline) {
			log.Fatalf("no report for %s:%s", repo, tag)
		}
	}
}

func pushRound(s *server, img v1.Image, round int) (cold, warm time.Duration) {
	push(s.addr, "bench/kitchen-sink", "latest", img)
	start := time.Now()
	waitDone(s.addr, "bench/kitchen-sink", "latest")
	cold = time.Since(start)

	next, err := mutate.AppendLayers(img, topLayer(fmt.Sprintf("round %d %d", round, time.Now().UnixNano())))
	if err != nil {
		log.Fatal(err)
	}
	push(s.addr, "bench/app", "latest", next)
	start = time.Now()
	waitDone(s.addr, "bench/app", "latest")
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

func concurrentPushes(s *server, n int) (lost int, took time.Duration) {
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
			push(s.addr, "bench/many", fmt.Sprint("i", i), img)
		}()
	}
	wg.Wait()
	for i := range n {
		project := "bench"
		path := "/api/v1/projects/" + project + "/repositories/many/artifacts/i" + fmt.Sprint(i) + "/vulnerabilities"
		done := false
		for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			var r struct{ Scan struct{ Status string } }
			if get(s.addr, path, &r) == 200 && (r.Scan.Status == "done" || r.Scan.Status == "failed") {
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
