package ui

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/api"
	"berth.dev/berth/internal/blob/filesystem"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/meta"
	metasqlite "berth.dev/berth/internal/meta/sqlite"
	"berth.dev/berth/internal/reports"
	reportsqlite "berth.dev/berth/internal/reports/sqlite"
)

// fixture is the UI over a real API, meta, blob and reports store, with
// authentication off (the pages' cost, not the login's, is measured).
type fixture struct {
	ui      *UI
	meta    *metasqlite.Store
	blobs   *filesystem.Store
	reports *reportsqlite.Store
	dir     string
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	ms, err := metasqlite.Open(ctx, filepath.Join(dir, "meta.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ms.Close() })
	rs, err := reportsqlite.Open(ctx, filepath.Join(dir, "meta.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { rs.Close() })
	bs, err := filesystem.New(filepath.Join(dir, "blobs"))
	if err != nil {
		tb.Fatal(err)
	}
	a := api.New(api.Options{Meta: ms, Reports: rs, Blobs: bs})
	u, err := New(Options{API: a, Version: "test"})
	if err != nil {
		tb.Fatal(err)
	}
	return &fixture{ui: u, meta: ms, blobs: bs, reports: rs, dir: dir}
}

// push stores an image (config and one layer, linked) in repo under tag,
// pushed at the time given, and returns its digest.
func (f *fixture) push(tb testing.TB, repo, tag, seed string, at time.Time) digest.Digest {
	tb.Helper()
	ctx := context.Background()
	config := []byte(`{"architecture":"amd64","os":"linux","config":{"Labels":{"seed":"` + seed + `"}},"rootfs":{"type":"layers","diff_ids":["sha256:` +
		digest.FromString("layer "+seed).Encoded() + `"]},"history":[{"created_by":"ADD base"},{"created_by":"CMD [\"sh\"]","empty_layer":true}]}`)
	cd := digest.FromBytes(config)
	if _, err := f.blobs.Put(ctx, cd, bytes.NewReader(config)); err != nil {
		tb.Fatal(err)
	}
	if err := f.meta.LinkBlob(ctx, repo, cd, int64(len(config))); err != nil {
		tb.Fatal(err)
	}
	ld := digest.FromString("layer blob " + seed)
	manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":1000}]}`, cd, len(config), ld))
	m := &meta.Manifest{Digest: digest.FromBytes(manifest), MediaType: "application/vnd.oci.image.manifest.v1+json",
		ArtifactType: "application/vnd.oci.image.config.v1+json", Content: manifest, PushedAt: at,
		References: []meta.Reference{{Digest: cd, Kind: meta.RefBlob}, {Digest: ld, Kind: meta.RefLayer}}}
	if err := f.meta.PutManifest(ctx, repo, m, []string{tag}); err != nil {
		tb.Fatal(err)
	}
	return m.Digest
}

// report stores a finished scan of d with n findings: the first names
// CVE-2024-0001 (every report has it), the rest are the image's own.
func (f *fixture) report(tb testing.TB, d digest.Digest, seed string, n int) {
	tb.Helper()
	r := &match.Report{SchemaVersion: match.ReportSchemaVersion, MatchedAt: time.Now().UTC(), Findings: []match.Finding{}}
	r.Inventory.Layers = []inventory.Layer{{DiffID: "sha256:" + digest.FromString("layer "+seed).Encoded()}}
	sev := []match.Severity{match.SeverityCritical, match.SeverityHigh, match.SeverityMedium, match.SeverityLow, match.SeverityUnknown}
	for i := range n {
		pkg := inventory.Package{Ecosystem: inventory.NPM, Name: fmt.Sprintf("pkg-%d", i), Version: "1.0.0",
			PURL: fmt.Sprintf("pkg:npm/pkg-%d@1.0.0", i), Layer: r.Inventory.Layers[0].DiffID}
		r.Inventory.Packages = append(r.Inventory.Packages, pkg)
		id := fmt.Sprintf("CVE-2024-%05d-%s", i, seed)
		if i == 0 {
			id = "CVE-2024-0001"
		}
		r.Findings = append(r.Findings, match.Finding{ID: id, Aliases: []string{"GHSA-" + seed + fmt.Sprint(i)}, Package: pkg,
			Ecosystem: "npm", Name: pkg.Name, Version: pkg.Version, Severity: sev[i%len(sev)], Status: match.StatusFixed,
			FixedVersions: []string{"1.0.1"}, Summary: "a flaw in " + pkg.Name})
	}
	if err := f.reports.Put(context.Background(), d, reports.Scan{Status: reports.Done, FinishedAt: time.Now()}, r, nil, -1); err != nil {
		tb.Fatal(err)
	}
}

// get renders a page and returns its status and body.
func (f *fixture) get(tb testing.TB, path string) (int, string) {
	tb.Helper()
	rec := httptest.NewRecorder()
	f.ui.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}
