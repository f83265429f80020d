package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/api"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/reports"
	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/store"
)

// storeReport stores a finished scan's report naming the findings given
// (id, alias, package) for the image, as a scan would leave it.
func storeReport(t *testing.T, a *authServer, img testImage, findings ...[3]string) {
	t.Helper()
	d := digest.Digest(img.digest())
	r := &match.Report{SchemaVersion: match.ReportSchemaVersion, Findings: []match.Finding{},
		Inventory: inventory.Inventory{Source: d.String(), Packages: []inventory.Package{}, Layers: []inventory.Layer{}}}
	for _, f := range findings {
		pkg := inventory.Package{Ecosystem: inventory.NPM, Name: f[2], Version: "1.0.0"}
		r.Inventory.Packages = append(r.Inventory.Packages, pkg)
		fd := match.Finding{ID: f[0], Package: pkg, Severity: match.SeverityCritical, Status: match.StatusFixed,
			FixedVersions: []string{"1.0.1"}, Summary: "summary of " + f[0]}
		if f[1] != "" {
			fd.Aliases = []string{f[1]}
		}
		r.Findings = append(r.Findings, fd)
	}
	if err := a.s.bg.reports.Put(context.Background(), d, reports.Scan{Status: reports.Done, FinishedAt: time.Now()}, r, nil, -1); err != nil {
		t.Fatal(err)
	}
}

// TestVulnerabilitySearchVisibility: GET /vulnerabilities/{id}/artifacts
// finds an advisory by id or alias in every repository holding an
// affected image, and each caller sees exactly the repositories it may
// pull from: an administrator all, a member its project and public ones,
// an anonymous caller public ones, an outsider nothing private.
func TestVulnerabilitySearchVisibility(t *testing.T) {
	a := startAuthServer(t)
	for _, p := range []string{"alpha", "beta", "open"} {
		a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": p, "public": p == "open"}), 201, "create "+p)
	}
	a.expect(a.api(adminCreds, "POST", "/users", map[string]any{"name": "amy", "password": "amy-password"}), 201, "create amy")
	a.expect(a.api(adminCreds, "PUT", "/projects/alpha/members/amy", map[string]any{"role": "developer"}), 200, "amy in alpha")
	a.expect(a.api(adminCreds, "POST", "/users", map[string]any{"name": "olga", "password": "olga-password"}), 201, "create olga")
	amy, olga := basicAuth("amy", "amy-password"), basicAuth("olga", "olga-password")

	shared, other := makeImage("shared"), makeImage("other")
	for _, repo := range []string{"alpha/app", "beta/app", "open/app"} {
		a.expect(a.push(repo, "v1", shared, adminCreds), 201, "push "+repo)
	}
	a.expect(a.push("alpha/tools/cli", "2.0", other, adminCreds), 201, "push alpha/tools/cli")
	storeReport(t, a, shared, [3]string{"CVE-2026-1000", "GHSA-aaaa-bbbb-cccc", "left-pad"}, [3]string{"CVE-2026-2000", "", "lodash"})
	storeReport(t, a, other, [3]string{"GHSA-aaaa-bbbb-cccc", "", "left-pad"})

	search := func(creds []string, id string) []string {
		t.Helper()
		r := a.expect(a.api(creds, "GET", "/vulnerabilities/"+url.PathEscape(id)+"/artifacts", nil), 200, "search "+id)
		var page api.VulnerabilityPage
		if err := json.Unmarshal([]byte(r.body), &page); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, art := range page.Artifacts {
			if len(art.Findings) == 0 {
				t.Errorf("%s in %s: no findings listed", id, art.FullName)
			}
			got = append(got, art.Project+"|"+art.Repository+"|"+strings.Join(art.Tags, ","))
		}
		if page.Total != len(got) {
			t.Errorf("search %s: total %d, %d listed", id, page.Total, len(got))
		}
		return got
	}
	for _, c := range []struct {
		who   string
		creds []string
		id    string
		want  []string
	}{
		{"admin", adminCreds, "CVE-2026-1000", []string{"alpha|app|v1", "beta|app|v1", "open|app|v1"}},
		{"admin by alias", adminCreds, "ghsa-AAAA-bbbb-cccc", []string{"alpha|app|v1", "alpha|tools/cli|2.0", "beta|app|v1", "open|app|v1"}},
		{"member", amy, "GHSA-aaaa-bbbb-cccc", []string{"alpha|app|v1", "alpha|tools/cli|2.0", "open|app|v1"}},
		{"outsider", olga, "CVE-2026-1000", []string{"open|app|v1"}},
		{"anonymous", nil, "CVE-2026-1000", []string{"open|app|v1"}},
		{"nobody has it", adminCreds, "CVE-1999-0001", nil},
	} {
		if got := search(c.creds, c.id); !slices.Equal(got, c.want) {
			t.Errorf("%s searching %s: %v, want %v", c.who, c.id, got, c.want)
		}
	}
	r := a.api(adminCreds, "GET", "/vulnerabilities/CVE-2026-1000/artifacts?page_size=1&page=2", nil)
	var page api.VulnerabilityPage
	json.Unmarshal([]byte(r.body), &page)
	if page.Total != 3 || len(page.Artifacts) != 1 || page.Artifacts[0].FullName != "beta/app" || page.Summary != "summary of CVE-2026-1000" ||
		page.Artifacts[0].Findings[0].Package != "left-pad" || page.Artifacts[0].Findings[0].FixedVersions[0] != "1.0.1" {
		t.Errorf("page 2 of 1: %s", r.body)
	}
	a.expect(a.api(adminCreds, "GET", "/vulnerabilities/%20/artifacts", nil), 400, "blank id")
}

// TestArtifactDetailAndSignatures: the artifact endpoint describes the
// image from its manifest and config; the signatures endpoint lists a
// cosign signature unverified ("no trusted key") until the project has a
// trust file, then names the trusted key that vouches; the listing
// carries the same summary and the platform.
func TestArtifactDetailAndSignatures(t *testing.T) {
	trustDir := t.TempDir()
	a := startAuthServer(t, func(c *Config) { c.TrustDir = trustDir })
	a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), 201, "create team")
	img := makeImage("signed")
	a.expect(a.push("team/app", "v1", img, adminCreds), 201, "push")

	var detail api.ArtifactDetail
	r := a.expect(a.api(adminCreds, "GET", "/projects/team/repositories/app/artifacts/v1", nil), 200, "detail")
	json.Unmarshal([]byte(r.body), &detail)
	if detail.Digest.String() != img.digest() || len(detail.Layers) != 1 || detail.Config == nil ||
		len(detail.Platforms) != 1 || detail.Platforms[0].Architecture != "amd64" || detail.Signatures == nil || detail.Signatures.Signatures != 0 {
		t.Errorf("detail: %s", r.body)
	}

	// Sign with a key of our own, through the registry API.
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := sign.NewKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(a.url)
	reg, _ := name.NewRegistry(u.Host, name.Insecure)
	st, err := store.NewRemote(reg, remote.WithAuth(&authn.Basic{Username: "admin", Password: testAdminPassword}))
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(u.Host+"/team/app:v1", name.Insecure)
	if _, err := sign.SignReference(context.Background(), st, ref, key, sign.SignOptions{Annotations: map[string]string{"by": "release-bot"}}); err != nil {
		t.Fatal(err)
	}
	var rep api.SignatureReport
	r = a.expect(a.api(adminCreds, "GET", "/projects/team/repositories/app/artifacts/v1/signatures", nil), 200, "signatures")
	json.Unmarshal([]byte(r.body), &rep)
	if rep.TrustConfigured || len(rep.Signatures) != 1 || rep.Signatures[0].Verified || rep.Signatures[0].Annotations["by"] != "release-bot" {
		t.Errorf("signatures without trust: %s", r.body)
	}

	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	trust := "keys:\n  - name: release-key\n    key: |\n" + indent(string(pub), "      ")
	if err := os.WriteFile(filepath.Join(trustDir, "team.yaml"), []byte(trust), 0o644); err != nil {
		t.Fatal(err)
	}
	r = a.expect(a.api(adminCreds, "GET", "/projects/team/repositories/app/artifacts/v1/signatures", nil), 200, "signatures with trust")
	rep = api.SignatureReport{}
	json.Unmarshal([]byte(r.body), &rep)
	if !rep.TrustConfigured || len(rep.Signatures) != 1 || !rep.Signatures[0].Verified || !slices.Equal(rep.Signatures[0].Keys, []string{"release-key"}) {
		t.Errorf("signatures with trust: %s", r.body)
	}
	var list api.ArtifactPage
	r = a.expect(a.api(adminCreds, "GET", "/projects/team/repositories/app/artifacts", nil), 200, "list")
	json.Unmarshal([]byte(r.body), &list)
	if list.Total != 2 || len(list.Artifacts) != 2 {
		t.Errorf("the listing without hide_attached shows the signature manifest too: %s", r.body)
	}
	list = api.ArtifactPage{}
	r = a.expect(a.api(adminCreds, "GET", "/projects/team/repositories/app/artifacts?hide_attached=true", nil), 200, "list")
	json.Unmarshal([]byte(r.body), &list)
	if list.Total != 1 || len(list.Artifacts) != 1 || list.Artifacts[0].Signatures == nil || !slices.Equal(list.Artifacts[0].Signatures.VerifiedBy, []string{"release-key"}) ||
		len(list.Artifacts[0].Platforms) != 1 || list.Artifacts[0].Platforms[0].OS != "linux" {
		t.Errorf("listing: %s", r.body)
	}
	// Another key signing does not make the trusted one vouch twice, and
	// an untrusted signature is listed with the reason.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	okey, _ := sign.NewKey(other)
	if _, err := sign.SignReference(context.Background(), st, ref, okey, sign.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	r = a.expect(a.api(adminCreds, "GET", "/projects/team/repositories/app/artifacts/v1/signatures", nil), 200, "two signatures")
	rep = api.SignatureReport{}
	json.Unmarshal([]byte(r.body), &rep)
	if len(rep.Signatures) != 2 || rep.Signatures[1].Verified || rep.Signatures[1].Error == "" {
		t.Errorf("an untrusted signature beside a trusted one: %s", r.body)
	}
	a.expect(a.api(adminCreds, "GET", "/projects/team/repositories/app/artifacts?sort=bogus", nil), 400, "bad sort")
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}
