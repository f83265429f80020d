package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/server"
)

// berth fsck reports a recorded blob size that disagrees with the blob's
// content (what a failed upload of a known digest once left), exits 1, and
// with --repair corrects it and exits 0.
func TestFsckRepairsRecordedSize(t *testing.T) {
	dir := t.TempDir()
	cfg := server.DefaultConfig()
	cfg.Data, cfg.Auth.Disabled = dir, true
	s, err := server.New(context.Background(), cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	layer := bytes.Repeat([]byte("layer"), 50)
	d := digest.FromBytes(layer)
	resp, err := http.Post(srv.URL+"/v2/r/blobs/uploads/?digest="+d.String(), "application/octet-stream", bytes.NewReader(layer))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("push: %v %v", err, resp)
	}
	resp.Body.Close()
	srv.Close()
	s.Close()

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE blobs SET size = 5 WHERE digest = ?", d.String()); err != nil {
		t.Fatal(err)
	}
	db.Close()

	out, err := runCmd(t, newFsckCmd(), "--data", dir)
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(out, "size-mismatch") {
		t.Fatalf("fsck of a wrong size: %v\n%s", err, out)
	}
	if _, err := runCmd(t, newFsckCmd(), "--data", dir, "--repair", "--quick"); err == nil {
		t.Error("--repair --quick accepted: a size would be taken from content nobody hashed")
	}
	out, err = runCmd(t, newFsckCmd(), "--data", dir, "--repair")
	if err != nil || !strings.Contains(out, "repaired size-mismatch") || !strings.Contains(out, "(1 repaired)") {
		t.Fatalf("fsck --repair: %v\n%s", err, out)
	}
	if out, err := runCmd(t, newFsckCmd(), "--data", dir); err != nil || !strings.Contains(out, ": 0 problems") {
		t.Errorf("fsck after repair: %v\n%s", err, out)
	}
}
