package registry

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/registry/access"
)

// The spec's grammars, used to check the hand-written validators.
var (
	nameRegexp = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRegexp  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

func TestValidNameMatchesTheSpecGrammar(t *testing.T) {
	for _, s := range []string{"a", "a/b", "a.b", "a_b", "a__b", "a___b", "a-b", "a--b", "a.-b", "-a", "a-", "a/", "/a",
		"a//b", "A", "a/B", "a..b", "a._b", "0", "a/0/b-c.d__e", ""} {
		if got, want := access.ValidRepository(s), nameRegexp.MatchString(s); got != want {
			t.Errorf("access.ValidRepository(%q) = %v, the spec's grammar says %v", s, got, want)
		}
	}
	if access.ValidRepository(strings.Repeat("a", 256)) {
		t.Error("a 256-character name is valid")
	}
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"library/ubuntu", "a__b", "a___b", "a/-b", "team-a/app.v2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > access.MaxRepositoryLength {
			return
		}
		if got, want := access.ValidRepository(s), nameRegexp.MatchString(s); got != want {
			t.Fatalf("access.ValidRepository(%q) = %v, the spec's grammar says %v", s, got, want)
		}
	})
}

func FuzzValidTag(f *testing.F) {
	for _, s := range []string{"latest", "v1.0.0", "_x", ".x", "-x", strings.Repeat("t", 128), strings.Repeat("t", 129)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validTag(s), tagRegexp.MatchString(s); got != want {
			t.Fatalf("validTag(%q) = %v, the spec's grammar says %v", s, got, want)
		}
	})
}

func TestParseRoute(t *testing.T) {
	d := digest.FromString("x").String()
	for _, tc := range []struct {
		path string
		want route
	}{
		{"/v2/", route{kind: routeBase}},
		{"/v2", route{kind: routeBase}},
		{"/v2/_catalog", route{kind: routeCatalog}},
		{"/v2/a/b/tags/list", route{kind: routeTags, name: "a/b"}},
		{"/v2/a/manifests/latest", route{kind: routeManifest, name: "a", ref: "latest"}},
		{"/v2/a/blobs/" + d, route{kind: routeBlob, name: "a", ref: d}},
		{"/v2/a/blobs/uploads/", route{kind: routeUploadStart, name: "a"}},
		{"/v2/a/blobs/uploads", route{kind: routeUploadStart, name: "a"}},
		{"/v2/a/blobs/uploads/abc", route{kind: routeUpload, name: "a", ref: "abc"}},
		{"/v2/a/referrers/" + d, route{kind: routeReferrers, name: "a", ref: d}},
		// Names may contain the endpoint words.
		{"/v2/blobs/manifests/manifests/x", route{kind: routeManifest, name: "blobs/manifests", ref: "x"}},
		{"/v2/a/blobs/uploads/blobs/" + d, route{kind: routeBlob, name: "a/blobs/uploads", ref: d}},
		{"/v2/tags/list/tags/list", route{kind: routeTags, name: "tags/list"}},
		{"/v3/a/manifests/x", route{}},
		{"/v2/a", route{}},
		{"/v2/manifests/x", route{}},
		{"/v2/a/other/x", route{}},
	} {
		if got := parseRoute(tc.path); got != tc.want {
			t.Errorf("parseRoute(%q) = %+v, want %+v", tc.path, got, tc.want)
		}
		if kind, name, ref := RouteOf(tc.path); kind != tc.want.kind.String() || name != tc.want.name || ref != tc.want.ref {
			t.Errorf("RouteOf(%q) = %s, %s, %s", tc.path, kind, name, ref)
		}
	}
}

func FuzzParseRoute(f *testing.F) {
	f.Add("/v2/a/b/manifests/latest")
	f.Add("/v2/a/blobs/uploads/x")
	f.Fuzz(func(t *testing.T, p string) {
		r := parseRoute(p)
		if r.kind == routeManifest && "/v2/"+r.name+"/manifests/"+r.ref != p {
			t.Fatalf("parseRoute(%q) = %+v does not rebuild the path", p, r)
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"0-99", "bytes=0-99", "bytes 5-9/100", "9-5", "-1-3", "a-b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, ok := parseContentRange(s)
		if ok && (start < 0 || end < start) {
			t.Fatalf("parseContentRange(%q) = %d, %d, true", s, start, end)
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	cfg := `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + digest.FromString("c").String() + `","size":1}`
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":`+cfg+`,"layers":[`+cfg+`]}`), "", false)
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`+cfg+`],"subject":`+cfg+`}`),
		"application/vnd.oci.image.index.v1+json", true)
	f.Add([]byte(`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"`+digest.FromString("{}").String()+`","size":2,"data":"e30="}}`),
		"application/vnd.docker.distribution.manifest.v2+json", false)
	f.Fuzz(func(t *testing.T, body []byte, contentType string, requireLayers bool) {
		m, err := parseManifest(body, contentType, requireLayers)
		if err != nil {
			if _, ok := err.(*apiError); !ok {
				t.Fatalf("parseManifest returned %T, want *apiError", err)
			}
			return
		}
		switch m.MediaType {
		case mediaTypeOCIManifest, mediaTypeOCIIndex, mediaTypeDockerManifest, mediaTypeDockerList:
		default:
			t.Fatalf("accepted media type %q", m.MediaType)
		}
		for _, r := range m.References {
			if !validDigest(string(r.Digest)) {
				t.Fatalf("accepted reference %q", r.Digest)
			}
		}
		if m.Subject != "" && !validDigest(string(m.Subject)) {
			t.Fatalf("accepted subject %q", m.Subject)
		}
	})
}

func TestCacheEvictsAndRefusesStaleFills(t *testing.T) {
	c := newManifestCache(8 * 1024)
	m := func(i int) *meta.Manifest {
		content := []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", 200)))
		return &meta.Manifest{Digest: digest.FromBytes(content), MediaType: mediaTypeOCIManifest, Content: content}
	}
	for i := range 100 {
		_, gen, _ := c.manifest("r", m(i).Digest)
		c.putManifest("r", newServedManifest(m(i)), gen)
	}
	if c.bytes > c.maxBytes {
		t.Errorf("cache holds %d bytes, limit %d", c.bytes, c.maxBytes)
	}
	if _, _, ok := c.manifest("r", m(99).Digest); !ok {
		t.Error("the most recent entry was evicted")
	}
	if _, _, ok := c.manifest("r", m(0).Digest); ok {
		t.Error("the oldest entry survived past the limit")
	}
	// A fill that began before an invalidation is refused.
	_, gen, _ := c.tag("r", "latest")
	c.invalidate("r", []string{"latest"})
	c.putTag("r", "latest", m(1).Digest, gen)
	if _, _, ok := c.tag("r", "latest"); ok {
		t.Error("a stale fill was cached")
	}
	_, gen, _ = c.tag("r", "latest")
	c.putTag("r", "latest", m(2).Digest, gen)
	if d, _, ok := c.tag("r", "latest"); !ok || d != m(2).Digest {
		t.Errorf("tag = %s, %v", d, ok)
	}
	var disabled *manifestCache
	disabled.putTag("r", "t", m(1).Digest, 0)
	if _, _, ok := disabled.tag("r", "t"); ok {
		t.Error("a disabled cache returned an entry")
	}
}

// While changes made elsewhere may go unheard the cache stays empty, and
// a fill that began before the reset is refused.
func TestCacheResetWhileNotHearing(t *testing.T) {
	c := newManifestCache(8 * 1024)
	d := digest.FromString("manifest")
	_, gen, _ := c.tag("r", "v1")
	c.putTag("r", "v1", d, gen)
	_, before, _ := c.tag("r", "other")
	c.reset(true)
	if _, _, ok := c.tag("r", "v1"); ok || c.bytes != 0 {
		t.Errorf("entries survived a reset (%d bytes)", c.bytes)
	}
	_, gen, _ = c.tag("r", "v1")
	c.putTag("r", "v1", d, gen)
	if _, _, ok := c.tag("r", "v1"); ok {
		t.Error("the cache filled while off")
	}
	c.reset(false)
	c.putTag("r", "other", d, before)
	if _, _, ok := c.tag("r", "other"); ok {
		t.Error("a fill begun before the reset was cached")
	}
	_, gen, _ = c.tag("r", "v1")
	c.putTag("r", "v1", d, gen)
	if got, _, ok := c.tag("r", "v1"); !ok || got != d {
		t.Error("the cache did not fill again once on")
	}
}
