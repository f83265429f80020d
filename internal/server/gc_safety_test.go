package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// The attack through the running server: a layer uploaded longer than the
// grace period before its manifest, garbage collection triggered as
// SIGUSR1 does, then the config and the manifest. The manifest push must
// not be acknowledged (it was 201, and the image could never be pulled).
func TestTriggeredGCNeverBreaksAnAcknowledgedPush(t *testing.T) {
	l := serveLimited(t, func(c *Config) { c.GC.Grace = 0 }) // the layer is past any grace period
	img := makeImage("layer first, manifest after gc")
	layer := digest.FromBytes(img.layer).String()
	upload := func(b []byte) {
		t.Helper()
		l.expect(l.do("POST", "/v2/library/app/blobs/uploads/?digest="+digest.FromBytes(b).String(), b, adminCreds...), http.StatusCreated, "upload")
	}
	upload(img.layer)
	l.s.TriggerGC()
	waitFor(t, "the triggered collection", func() bool { return l.s.metrics.gcRuns.WithLabelValues("ok").Value() == 1 })
	upload(img.config)
	manifest := func() answer {
		return l.do("PUT", "/v2/library/app/manifests/v1", img.manifest,
			append(adminCreds, "Content-Type", "application/vnd.oci.image.manifest.v1+json")...)
	}
	r := manifest()
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "MANIFEST_BLOB_UNKNOWN") || !strings.Contains(r.body, layer) {
		t.Fatalf("manifest naming the collected layer = %d %s, want 400 MANIFEST_BLOB_UNKNOWN", r.status, r.body)
	}
	l.expect(l.do("GET", "/v2/library/app/manifests/v1", nil, adminCreds...), http.StatusNotFound, "the refused manifest")
	// Pushed again, the image is whole, and stays whole through the next
	// collection.
	upload(img.layer)
	l.expect(manifest(), http.StatusCreated, "manifest after the layer came back")
	l.s.TriggerGC()
	waitFor(t, "the second collection", func() bool { return l.s.metrics.gcRuns.WithLabelValues("ok").Value() == 2 })
	for _, b := range [][]byte{img.layer, img.config} {
		r := l.do("HEAD", "/v2/library/app/blobs/"+digest.FromBytes(b).String(), nil, adminCreds...)
		if r.status != http.StatusOK {
			t.Errorf("HEAD of a blob of the acknowledged image after gc = %d", r.status)
		}
	}
}
