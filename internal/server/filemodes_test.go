package server

import (
	"context"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// Every file berth writes in the data directory is kept from other users
// (the database holds password hashes), whatever the umask and the mode of
// a directory that existed before: meta.db and its -wal and -shm 0600,
// everything else 0600 or 0640.
func TestDataFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)

	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
	}{
		{"directory made 0755 beforehand", func(t *testing.T, dir string) {}},
		{"meta.db, -wal and -shm left 0644 by an older berth", func(t *testing.T, dir string) {
			for _, name := range []string{"meta.db", "meta.db-wal", "meta.db-shm"} {
				if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			tc.prepare(t, dir)
			cfg := DefaultConfig()
			cfg.Data = dir
			cfg.ShutdownTimeout = 10 * time.Second
			cfg.Auth.AdminPassword = testAdminPassword
			cfg.TLS.SelfSigned = true
			s, err := New(context.Background(), cfg, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			srv := httptest.NewServer(s)
			defer srv.Close()
			// A blob, a manifest and an upload left open: blob files, an
			// upload directory with its data and hash state.
			a := &authServer{t: t, s: s, url: srv.URL}
			a.expect(a.push("library/app", "v1", makeImage("modes"), adminCreds), http.StatusCreated, "push")
			r := a.do("POST", "/v2/library/app/blobs/uploads/", nil, adminCreds...)
			a.expect(r, http.StatusAccepted, "start upload")
			chunk := []byte("half an upload")
			a.expect(a.do("PATCH", r.header.Get("Location"), chunk, adminCreds...), http.StatusAccepted, "PATCH")
			if _, err := os.Stat(filepath.Join(dir, "meta.db-wal")); err != nil {
				t.Fatalf("no WAL file to check: %v", err)
			}

			seen := map[string]bool{}
			err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				fi, err := d.Info()
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(dir, p)
				mode := fi.Mode().Perm()
				want := "0600 or 0640"
				ok := mode == 0o600 || mode == 0o640
				if strings.HasPrefix(rel, "meta.db") {
					want, ok = "0600", mode == 0o600
				}
				if !ok {
					t.Errorf("%s is %#o, want %s", rel, mode, want)
				}
				seen[strings.SplitN(rel, string(filepath.Separator), 2)[0]] = true
				seen[filepath.Base(rel)] = true
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"meta.db", "meta.db-wal", "meta.db-shm", "berth.lock", "blobs", "data", "hashstate",
				"auth", "tls", "cert.pem", "key.pem", digest.FromBytes(makeImage("modes").layer).Encoded()} {
				if !seen[f] {
					t.Errorf("no %s was written: the test checks less than it claims (saw %v)", f, seen)
				}
			}
		})
	}
}
