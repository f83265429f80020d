// Command advisory measures berth serve's continuous re-match end to end:
// the time from a new advisory appearing in a feed the server follows
// until a webhook receiver holds the dev.berth.vulnerabilities.new event
// naming it, for an image stored and scanned before (no image is read
// again). Each round adds one more advisory to a copy of the OSV npm feed
// and asks the server to update its database (POST /api/v1/vulndb/update,
// what the schedule does at each interval), so the figure is the update
// (download, build, compare), the re-match and the delivery.
//
// It starts the berth binary given, with authentication on (webhooks
// belong to projects), serving copies of ../shared/vulndata over loopback.
// bench/advisory.sh builds and runs it; docs/benchmarks.md records its
// output.
package main

import (
	"archive/zip"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"berth.dev/berth/bench/benchimage"
	"berth.dev/berth/bench/benchserver"
)

func main() {
	berth := flag.String("berth", "berth", "berth binary")
	shared := flag.String("shared", "../shared", "the shared fixtures folder")
	layoutDir := flag.String("kitchen-sink", "", "kitchen-sink as an OCI layout directory (untarred kitchen-sink.oci.tar)")
	rounds := flag.Int("rounds", 5, "advisories added, one a round")
	pkg := flag.String("package", "minimist", "npm package of kitchen-sink the new advisories name")
	flag.Parse()
	if *layoutDir == "" {
		log.Fatal("-kitchen-sink is required")
	}
	feedDir, err := os.MkdirTemp("", "advisory-feed-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(feedDir)
	for _, sub := range []string{"osv", "nodejs-security-wg"} {
		copyTree(filepath.Join(*shared, "vulndata", sub), filepath.Join(feedDir, sub))
	}
	feed := httptest.NewServer(http.FileServer(http.Dir(feedDir)))
	defer feed.Close()
	hooks := newReceiver()
	defer hooks.srv.Close()

	img, err := benchimage.FromLayout(*layoutDir)
	if err != nil {
		log.Fatal(err)
	}
	s := benchserver.Start(*berth, feed.URL, "--webhooks-allow-private")
	defer s.Stop()
	s.Call("POST", "/api/v1/projects", map[string]any{"name": "bench"}, 201)
	s.Call("POST", "/api/v1/projects/bench/webhooks", map[string]any{"url": hooks.srv.URL + "/hook",
		"events": []string{"dev.berth.vulnerabilities.new"}}, 201)
	ref, err := name.ParseReference(s.Addr+"/bench/kitchen-sink:latest", name.Insecure)
	if err != nil {
		log.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: s.Password})); err != nil {
		log.Fatal(err)
	}
	s.WaitReport("bench/kitchen-sink", "latest")

	var took []time.Duration
	for r := range *rounds {
		id := fmt.Sprintf("GHSA-bench-%04d-%d", r, time.Now().UnixNano()%10000)
		zipPath := filepath.Join(feedDir, "osv", "npm", "all.zip")
		addAdvisory(zipPath, id, *pkg)
		// The feed answers conditional requests by modification time, to
		// the second: each round's copy is a minute newer than the last.
		mtime := time.Now().Add(time.Duration(r+1) * time.Minute)
		if err := os.Chtimes(zipPath, mtime, mtime); err != nil {
			log.Fatal(err)
		}
		start := time.Now()
		s.Call("POST", "/api/v1/vulndb/update", nil, 202)
		at, ok := hooks.wait(id, 2*time.Minute)
		if !ok {
			log.Fatalf("no dev.berth.vulnerabilities.new naming %s within 2 minutes; berth's log:\n%s", id, s.Logs())
		}
		took = append(took, at.Sub(start))
	}
	slices.Sort(took)
	fmt.Printf("advisory added → dev.berth.vulnerabilities.new received (update, re-match, delivery), kitchen-sink stored: median %v, min %v, max %v (%d rounds)\n",
		took[len(took)/2].Round(time.Millisecond), took[0].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), len(took))
}

// copyTree copies the files under src to dst.
func copyTree(src, dst string) {
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		log.Fatal(err)
	}
}

// addAdvisory rewrites an OSV feed's zip with one more record: a critical
// flaw in every version of pkg.
func addAdvisory(path, id, pkg string) {
	old, err := zip.OpenReader(path)
	if err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range old.File {
		if err := zw.Copy(f); err != nil {
			log.Fatal(err)
		}
	}
	old.Close()
	w, err := zw.Create(id + ".json")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(w, `{"schema_version":"1.6.0","id":%q,"modified":"2026-12-07T00:00:00Z","published":"2026-12-07T00:00:00Z",
		"summary":"benchmark advisory","database_specific":{"severity":"CRITICAL"},
		"affected":[{"package":{"ecosystem":"npm","name":%q},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"999.0.0"}]}]}]}`, id, pkg)
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}

// receiver notes when each event body first named an id.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []delivery
}

type delivery struct {
	at   time.Time
	body string
}

func newReceiver() *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, delivery{time.Now(), string(b)})
		r.mu.Unlock()
	}))
	return r
}

// wait returns when an event naming id arrived, or false if none did
// within the time given.
func (r *receiver) wait(id string, within time.Duration) (time.Time, bool) {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		r.mu.Lock()
		for _, d := range r.got {
			if strings.Contains(d.body, id) {
				r.mu.Unlock()
				return d.at, true
			}
		}
		r.mu.Unlock()
	}
	return time.Time{}, false
}
