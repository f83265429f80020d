package e2e

import (
	"archive/zip"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"berth.dev/berth/internal/testpeers"
)

// receiver is a webhook receiver that records what it is sent.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	events []receivedEvent
}

type receivedEvent struct {
	Header http.Header
	Body   []byte
	Event  struct {
		SpecVersion string          `json:"specversion"`
		ID          string          `json:"id"`
		Source      string          `json:"source"`
		Type        string          `json:"type"`
		Subject     string          `json:"subject"`
		Data        json.RawMessage `json:"data"`
	}
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var ev receivedEvent
		ev.Header, ev.Body = req.Header.Clone(), body
		if err := json.Unmarshal(body, &ev.Event); err != nil {
			t.Errorf("webhook body is not JSON: %v\n%s", err, body)
		}
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) ofType(typ string) []receivedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []receivedEvent
	for _, e := range r.events {
		if e.Event.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits for the first event of typ.
func (r *receiver) waitEvent(t *testing.T, typ string) receivedEvent {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if evs := r.ofType(typ); len(evs) > 0 {
			return evs[0]
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no %s event arrived in 3 minutes", typ)
	return receivedEvent{}
}

// apiCall calls berth's JSON API as the administrator and decodes the
// answer into out (when not nil), failing unless the status is want.
func apiCall(t *testing.T, s *server, method, path string, body any, want int, out any) []byte {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+s.Addr+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth("admin", s.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, raw)
		}
	}
	return raw
}

// storedReport is what the vulnerabilities endpoint answers.
type storedReport struct {
	Scan struct {
		Status      string    `json:"status"`
		DBUpdatedAt time.Time `json:"db_updated_at"`
		Error       string    `json:"error"`
	} `json:"scan"`
	Findings []json.RawMessage `json:"findings"`
	Secrets  []json.RawMessage `json:"secrets"`
}

// waitReport polls an artifact's stored report until its scan is done.
func waitReport(t *testing.T, s *server, path string) (storedReport, []byte) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", "http://"+s.Addr+path, nil)
		req.SetBasicAuth("admin", s.Password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			var r storedReport
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Fatal(err)
			}
			switch r.Scan.Status {
			case "done":
				return r, raw
			case "failed":
				t.Fatalf("scan failed: %s", r.Scan.Error)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no report at %s in 3 minutes", path)
	return storedReport{}, nil
}

// copyFeed copies ../shared/vulndata's OSV feed and the Node.js WG
// advisories to a writable folder served over loopback HTTP, as upstream
// serves them.
func copyFeed(t *testing.T) (dir string, srv *httptest.Server) {
	t.Helper()
	src := testpeers.Shared(t, "vulndata")
	dir = t.TempDir()
	for _, sub := range []string{"osv", "nodejs-security-wg", "debian-tracker", "alpine-secdb"} {
		err := filepath.WalkDir(filepath.Join(src, sub), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			if d.IsDir() {
				return os.MkdirAll(filepath.Join(dir, rel), 0o755)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	srv = httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return dir, srv
}

// addAdvisory adds one OSV record to the feed's npm all.zip.
func addAdvisory(t *testing.T, feed, id, pkg, fixed string) {
	t.Helper()
	path := filepath.Join(feed, "osv", "npm", "all.zip")
	old, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range old.File {
		w, _ := zw.CreateHeader(&f.FileHeader)
		rc, _ := f.Open()
		io.Copy(w, rc)
		rc.Close()
	}
	old.Close()
	w, _ := zw.Create(id + ".json")
	fmt.Fprintf(w, `{"schema_version":"1.6.0","id":%q,"modified":"2026-12-06T00:00:00Z","published":"2026-12-06T00:00:00Z",
		"summary":"flaw found today","database_specific":{"severity":"CRITICAL"},
		"affected":[{"package":{"ecosystem":"npm","name":%q},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":%q}]}]}]}`,
		id, pkg, fixed)
	zw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func findingKeys(t *testing.T, raw []json.RawMessage) []string {
	t.Helper()
	var out []string
	for _, f := range raw {
		var v struct {
			ID      string `json:"id"`
			Package struct {
				Name    string `json:"name"`
				Version string `json:"version"`
			} `json:"package"`
		}
		json.Unmarshal(f, &v)
		out = append(out, v.ID+" "+v.Package.Name+"@"+v.Package.Version)
	}
	slices.Sort(out)
	return out
}

// TestScanOnPush is issue 16's proof with the real clients: a server that
// keeps its own database from ../shared/vulndata, an image pushed with
// crane, the stored report equal to `berth scan` of the same archive, the
// SBOM referrer seen by oras, a signed scan.completed webhook, and a new
// advisory that reaches exactly the affected image's receiver.
func TestScanOnPush(t *testing.T) {
	crane, oras := testpeers.Tool(t, "crane"), testpeers.Tool(t, "oras")
	feed, feedSrv := copyFeed(t)
	// Every kind of source in ../shared/vulndata: OSV and the Node.js WG
	// over HTTP, the Debian tracker and the Alpine secdb from disk.
	sources := []string{"--db-source", feedSrv.URL + "/osv", "--db-source", "nodejs-wg:" + feedSrv.URL + "/nodejs-security-wg/vuln.zip",
		"--db-source", "debian-tracker:" + filepath.Join(feed, "debian-tracker"), "--db-source", "alpine-secdb:" + filepath.Join(feed, "alpine-secdb")}
	s := startBerthAuth(t, append(sources, "--db-update-interval", "0", "--webhooks-allow-private")...)
	env := []string{"HOME=" + t.TempDir()}

	// The database is built on request; wait until it is in place.
	apiCall(t, s, "POST", "/api/v1/vulndb/update", nil, http.StatusAccepted, nil)
	var status struct {
		Ready    bool `json:"ready"`
		Updating bool `json:"updating"`
		Database struct {
			UpdatedAt  time.Time      `json:"updated_at"`
			Records    int            `json:"records"`
			Ecosystems map[string]int `json:"ecosystems"`
		} `json:"database"`
		LastError string `json:"last_error"`
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !status.Ready && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		apiCall(t, s, "GET", "/api/v1/vulndb", nil, http.StatusOK, &status)
	}
	if !status.Ready || status.Database.Records == 0 {
		t.Fatalf("vulnerability database not ready: %+v", status)
	}
	for _, eco := range []string{"npm", "PyPI", "Go", "Debian:11", "Alpine:v3.10"} {
		if status.Database.Ecosystems[eco] == 0 {
			t.Errorf("the server's database has no %s records: %v", eco, status.Database.Ecosystems)
		}
	}
	firstDB := status.Database.UpdatedAt

	berthAdmin(t, s, "project", "create", "team-a")
	berthAdmin(t, s, "project", "create", "team-b")
	berthAdmin(t, s, "project", "create", "team-c")
	berthAdmin(t, s, "project", "update", "team-c", "--auto-scan=false")
	recvA, recvB := newReceiver(t), newReceiver(t)
	wanted := []string{"dev.berth.scan.completed", "dev.berth.vulnerabilities.new", "dev.berth.artifact.pushed"}
	apiCall(t, s, "POST", "/api/v1/projects/team-a/webhooks", map[string]any{"url": recvA.URL + "/hook", "events": wanted, "secret": "s3cret"}, http.StatusCreated, nil)
	apiCall(t, s, "POST", "/api/v1/projects/team-b/webhooks", map[string]any{"url": recvB.URL + "/hook", "events": wanted, "secret": "other"}, http.StatusCreated, nil)

	login := []string{"--insecure"}
	run(t, env, crane, "auth", "login", "-u", "admin", "-p", s.Password, s.Addr)
	kitchen := untar(t, testpeers.Shared(t, "images", "kitchen-sink.oci.tar"))
	minbase := untar(t, testpeers.Shared(t, "images", "debian-bookworm-minbase.oci.tar"))
	run(t, env, crane, append([]string{"push", kitchen, s.Addr + "/team-a/kitchen-sink:latest"}, login...)...)
	run(t, env, crane, append([]string{"push", minbase, s.Addr + "/team-b/debian:12"}, login...)...)
	// An image of its own in a project that does not scan its pushes.
	run(t, env, crane, append([]string{"mutate", s.Addr + "/team-b/debian:12", "--label", "variant=team-c", "-t", s.Addr + "/team-c/debian:12"}, login...)...)

	pathA := "/api/v1/projects/team-a/repositories/kitchen-sink/artifacts/latest/vulnerabilities"
	pathB := "/api/v1/projects/team-b/repositories/debian/artifacts/12/vulnerabilities"
	reportA, rawA := waitReport(t, s, pathA)
	reportB, _ := waitReport(t, s, pathB)
	// team-c scans nothing pushed to it (the project's switch). The relay
	// acts on pushes in order: once a later push to team-a is announced,
	// team-c's was seen and left alone.
	run(t, env, crane, append([]string{"tag", s.Addr + "/team-a/kitchen-sink:latest", "after-team-c"}, login...)...)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		announced := false
		for _, ev := range recvA.ofType("dev.berth.artifact.pushed") {
			announced = announced || bytes.Contains(ev.Event.Data, []byte(`"after-team-c"`))
		}
		if announced {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the push of tag after-team-c was never announced")
		}
	}
	var teamC struct {
		Artifacts []struct {
			Scan *struct{ Status string } `json:"scan"`
		} `json:"artifacts"`
	}
	apiCall(t, s, "GET", "/api/v1/projects/team-c/repositories/debian/artifacts", nil, http.StatusOK, &teamC)
	if len(teamC.Artifacts) != 1 || teamC.Artifacts[0].Scan != nil {
		t.Errorf("team-c (auto-scan off) artifacts: %+v", teamC.Artifacts)
	}
	apiCall(t, s, "GET", "/api/v1/projects/team-c/repositories/debian/artifacts/12/vulnerabilities", nil, http.StatusNotFound, nil)

	// The stored findings are those `berth scan` finds in the same archive
	// with a database built from the same records.
	dbDir := t.TempDir()
	runBerth := func(args ...string) string {
		t.Helper()
		out, err := runErr(env, berthBin, args...)
		if err != nil {
			t.Fatalf("berth %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	runBerth("db", "update", "--db-dir", dbDir, "--source", feedSrv.URL+"/osv", "--source", "nodejs-wg:"+feedSrv.URL+"/nodejs-security-wg/vuln.zip",
		"--source", "debian-tracker:"+filepath.Join(feed, "debian-tracker"), "--source", "alpine-secdb:"+filepath.Join(feed, "alpine-secdb"))
	cliOut := filepath.Join(t.TempDir(), "cli.json")
	runBerth("scan", "oci-archive:"+testpeers.Shared(t, "images", "kitchen-sink.oci.tar"), "--db-dir", dbDir, "--format", "json", "-o", cliOut,
		"--ignorefile=", "--cache-dir", t.TempDir())
	var cli storedReport
	cliRaw, _ := os.ReadFile(cliOut)
	if err := json.Unmarshal(cliRaw, &cli); err != nil {
		t.Fatal(err)
	}
	if len(cli.Findings) == 0 {
		t.Fatal("berth scan found nothing in kitchen-sink: the comparison proves nothing")
	}
	if got, want := findingKeys(t, reportA.Findings), findingKeys(t, cli.Findings); !slices.Equal(got, want) {
		t.Errorf("stored findings differ from berth scan's:\n stored %v\n    cli %v", got, want)
	}
	for i := range cli.Findings {
		var a, b any
		json.Unmarshal(reportA.Findings[i], &a)
		json.Unmarshal(cli.Findings[i], &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("finding %d differs:\n stored %s\n    cli %s", i, reportA.Findings[i], cli.Findings[i])
			break
		}
	}
	// The server looks for secrets as berth scan does, by default, and
	// finds the same (kitchen-sink's planted key, and the documentation
	// example keys reported as allowed).
	if len(reportA.Secrets) == 0 || len(reportA.Secrets) != len(cli.Secrets) {
		t.Errorf("stored report has %d secrets, berth scan %d", len(reportA.Secrets), len(cli.Secrets))
	}
	for i := range min(len(reportA.Secrets), len(cli.Secrets)) {
		var a, b any
		json.Unmarshal(reportA.Secrets[i], &a)
		json.Unmarshal(cli.Secrets[i], &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("secret %d differs:\n stored %s\n    cli %s", i, reportA.Secrets[i], cli.Secrets[i])
		}
	}
	if !bytes.Contains(rawA, []byte(`"schemaVersion"`)) || !bytes.Contains(rawA, []byte(`"inventory"`)) {
		t.Errorf("the stored report is not berth scan's document:\n%.300s", rawA)
	}
	// SARIF and CycloneDX encodings of the stored report.
	sarif := apiCall(t, s, "GET", pathA+"?format=sarif", nil, http.StatusOK, nil)
	if !bytes.Contains(sarif, []byte(`"version": "2.1.0"`)) {
		t.Errorf("?format=sarif is not SARIF 2.1.0:\n%.200s", sarif)
	}

	// oras sees the CycloneDX SBOM referrer.
	out := run(t, env, oras, "discover", "--plain-http", "-u", "admin", "-p", s.Password, "--format", "json",
		s.Addr+"/team-a/kitchen-sink:latest")
	if !strings.Contains(out, "application/vnd.cyclonedx+json") {
		t.Errorf("oras discover shows no CycloneDX referrer:\n%s", out)
	}
	// So does cosign tree, through the referrers API.
	out = run(t, env, testpeers.Tool(t, "cosign2"), "tree", "--experimental-oci11", "--allow-http-registry", s.Addr+"/team-a/kitchen-sink:latest")
	if !strings.Contains(out, "application/vnd.cyclonedx+json") {
		t.Errorf("cosign tree shows no CycloneDX referrer:\n%s", out)
	}

	// Receivers got a correctly signed scan.completed for their image.
	for _, c := range []struct {
		r      *receiver
		secret string
		repo   string
	}{{recvA, "s3cret", "team-a/kitchen-sink"}, {recvB, "other", "team-b/debian"}} {
		ev := c.r.waitEvent(t, "dev.berth.scan.completed")
		mac := hmac.New(sha256.New, []byte(c.secret))
		mac.Write(ev.Body)
		if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); ev.Header.Get("X-Berth-Signature-256") != want {
			t.Errorf("%s: signature %q, want %q", c.repo, ev.Header.Get("X-Berth-Signature-256"), want)
		}
		if ev.Event.SpecVersion != "1.0" || ev.Header.Get("Content-Type") != "application/cloudevents+json; charset=utf-8" ||
			!strings.HasPrefix(ev.Event.Subject, c.repo+"@sha256:") {
			t.Errorf("%s: event %+v, content type %s", c.repo, ev.Event, ev.Header.Get("Content-Type"))
		}
	}
	if len(recvA.ofType("dev.berth.artifact.pushed")) == 0 {
		t.Error("no artifact.pushed event for the push")
	}

	// A new advisory for a package only kitchen-sink has: its receiver is
	// told, naming it; the Debian image is neither re-matched nor told.
	addAdvisory(t, feed, "BERTH-E2E-2026-0001", "node-fetch", "2.6.99")
	apiCall(t, s, "POST", "/api/v1/vulndb/update", nil, http.StatusAccepted, nil)
	ev := recvA.waitEvent(t, "dev.berth.vulnerabilities.new")
	var data struct {
		Repository string   `json:"repository"`
		Digest     string   `json:"digest"`
		Tags       []string `json:"tags"`
		New        []struct {
			ID       string `json:"id"`
			Severity string `json:"severity"`
			Package  string `json:"package"`
		} `json:"new"`
	}
	if err := json.Unmarshal(ev.Event.Data, &data); err != nil {
		t.Fatal(err)
	}
	if data.Repository != "team-a/kitchen-sink" || !slices.Equal(data.Tags, []string{"after-team-c", "latest"}) || len(data.New) != 1 ||
		data.New[0].ID != "BERTH-E2E-2026-0001" || data.New[0].Package != "node-fetch" || data.New[0].Severity != "CRITICAL" {
		t.Errorf("vulnerabilities.new data: %s", ev.Event.Data)
	}
	after, _ := waitReport(t, s, pathA)
	if len(after.Secrets) != len(reportA.Secrets) {
		t.Errorf("the re-match lost the image's secrets: %d, were %d", len(after.Secrets), len(reportA.Secrets))
	}
	if after.Scan.DBUpdatedAt.Equal(firstDB) || !slices.Contains(findingKeys(t, after.Findings), "BERTH-E2E-2026-0001 node-fetch@2.6.0") {
		t.Errorf("kitchen-sink's stored report was not re-matched: db %v, findings %v", after.Scan.DBUpdatedAt, findingKeys(t, after.Findings))
	}
	// The Debian image's report was not touched (no key of it changed),
	// and its receiver heard of no new vulnerability.
	againB, _ := waitReport(t, s, pathB)
	if !againB.Scan.DBUpdatedAt.Equal(reportB.Scan.DBUpdatedAt) {
		t.Errorf("the unaffected image was re-matched: db %v, was %v", againB.Scan.DBUpdatedAt, reportB.Scan.DBUpdatedAt)
	}
	if evs := recvB.ofType("dev.berth.vulnerabilities.new"); len(evs) != 0 {
		t.Errorf("the unaffected image's receiver got %d vulnerabilities.new events: %s", len(evs), evs[0].Body)
	}
}

// TestScansSurviveKill9 kills the server (kill -9) while fifty pushed
// images wait to be scanned, restarts it on the same data directory, and
// finds every image scanned, each announced once.
func TestScansSurviveKill9(t *testing.T) {
	_, feedSrv := copyFeed(t)
	args := []string{"--db-source", feedSrv.URL + "/osv", "--db-update-interval", "0", "--scan-workers", "1", "--webhooks-allow-private"}
	s := startBerthAuth(t, args...)
	apiCall(t, s, "POST", "/api/v1/vulndb/update", nil, http.StatusAccepted, nil)
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var st struct{ Ready bool }
		apiCall(t, s, "GET", "/api/v1/vulndb", nil, http.StatusOK, &st)
		if st.Ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no vulnerability database")
		}
	}
	berthAdmin(t, s, "project", "create", "many")
	recv := newReceiver(t)
	apiCall(t, s, "POST", "/api/v1/projects/many/webhooks", map[string]any{"url": recv.URL, "events": []string{"dev.berth.scan.completed"}}, http.StatusCreated, nil)
	const n = 50
	auth := authn.FromConfig(authn.AuthConfig{Username: "admin", Password: s.Password})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, err := random.Image(256, 2)
			if err != nil {
				t.Error(err)
				return
			}
			ref, _ := name.ParseReference(fmt.Sprintf("%s/many/app:i%d", s.Addr, i), name.Insecure)
			if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Killed with scans queued and running: nothing drains, nothing is
	// written on the way out.
	var page struct {
		Artifacts []struct {
			Scan *struct{ Status string } `json:"scan"`
		} `json:"artifacts"`
	}
	apiCall(t, s, "GET", "/api/v1/projects/many/repositories/app/artifacts?page_size=100", nil, http.StatusOK, &page)
	s.cmd.Process.Kill()
	scannedBefore := 0
	for _, a := range page.Artifacts {
		if a.Scan != nil && a.Scan.Status == "done" {
			scannedBefore++
		}
	}
	if scannedBefore == n {
		t.Fatal("every image was scanned before the kill: the test proves nothing")
	}
	s.cmd.Wait()
	done := 0
	again := launchBerthOn(t, s.Addr, s.Data, s.Password, args...)
	for i := range n {
		waitReport(t, again, fmt.Sprintf("/api/v1/projects/many/repositories/app/artifacts/i%d/vulnerabilities", i))
		done++
	}
	// Each image's scan completes once, whichever server ran it: one
	// event per image. (A delivery in flight at the kill may arrive twice
	// with the same event id, which receivers drop: at least once.)
	deadline := time.Now().Add(time.Minute)
	for len(recv.ofType("dev.berth.scan.completed")) < n && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // a duplicate would come right behind
	subjects := map[string]int{}
	seen := map[string]bool{}
	for _, ev := range recv.ofType("dev.berth.scan.completed") {
		if !seen[ev.Event.ID] {
			seen[ev.Event.ID] = true
			subjects[ev.Event.Subject]++
		}
	}
	if len(subjects) != n {
		t.Errorf("%d images announced, want %d", len(subjects), n)
	}
	for subj, c := range subjects {
		if c != 1 {
			t.Errorf("%s announced %d times", subj, c)
		}
	}
	t.Logf("%d images scanned across the kill, %d of them before it", done, scannedBefore)
}
