package server

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/scanservice"
)

// writeNPMFeed writes an OSV feed folder with one npm record per id,
// each affecting its package below 2.0.0.
func writeNPMFeed(t *testing.T, dir string, recs map[string]string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "npm"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "ecosystems.txt"), []byte("npm\n"), 0o644)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for id, pkg := range recs {
		v := osv.Vulnerability{ID: id, Modified: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Summary: "flaw " + id,
			Affected: []osv.Affected{{Package: osv.Package{Ecosystem: "npm", Name: pkg},
				Ranges: []osv.Range{{Type: osv.RangeSemver, Events: []osv.Event{{Introduced: "0"}, {Fixed: "2.0.0"}}}}}},
			DatabaseSpecific: json.RawMessage(`{"severity":"HIGH"}`)}
		w, _ := zw.Create(id + ".json")
		json.NewEncoder(w).Encode(v)
	}
	zw.Close()
	if err := os.WriteFile(filepath.Join(dir, "npm", "all.zip"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// npmImage is a one-layer image holding the npm package name at 1.0.0.
func npmImage(name string) testImage {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := fmt.Sprintf(`{"name":%q,"version":"1.0.0","license":"MIT"}`, name)
	tw.WriteHeader(&tar.Header{Name: "app/node_modules/" + name + "/package.json", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	tw.Write([]byte(body))
	tw.Close()
	layer := buf.Bytes()
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + digest.FromBytes(layer).String() + `"]}}`)
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
		digest.FromBytes(config), len(config), digest.FromBytes(layer), len(layer))
	return testImage{config, layer, []byte(manifest)}
}

// TestReplicasScanWithThePublishedDatabase: replica A updates the
// vulnerability database; replica B, which runs every job and never
// updates, scans and re-matches with the database A built, not with what
// its own directory held: a scan on B right after A's update finds the
// new record, a re-match A's next update queued runs on B and adds the
// record that update brought, and both replicas' GET /api/v1/vulndb show
// the same database.
func TestReplicasScanWithThePublishedDatabase(t *testing.T) {
	ctx := context.Background()
	shared := sharedBackends(t)
	feed := t.TempDir()
	replica := func(c *Config) {
		shared(c)
		c.Scan.DBSources = []string{feed}
		c.Scan.DBUpdateInterval = 0
		c.Jobs.RetryBase, c.Jobs.RetryMax = 50*time.Millisecond, 500*time.Millisecond
	}
	a := startAuthServer(t, replica)
	b := startAuthServer(t, replica)
	// B works every job (A's queue is not started). B's background
	// install of announced databases is stopped: what B scans with must
	// come from the jobs' own check of the published database.
	if err := b.s.bg.start(ctx); err != nil {
		t.Fatal(err)
	}
	b.s.bg.stopSharedDB()
	<-b.s.bg.sharedDBDone

	update := func(recs map[string]string) {
		t.Helper()
		writeNPMFeed(t, feed, recs)
		if _, err := a.s.bg.scans.UpdateDB(ctx); err != nil {
			t.Fatalf("update on A: %v", err)
		}
	}
	// findings waits until the stored report of tag on B is done and
	// holds want.
	findings := func(tag, want string) {
		t.Helper()
		var body string
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			body = b.api(adminCreds, "GET", "/projects/team/repositories/app/artifacts/"+tag+"/vulnerabilities", nil).body
			var rep struct{ Scan struct{ Status string } }
			if json.Unmarshal([]byte(body), &rep) == nil && rep.Scan.Status == "done" && strings.Contains(body, `"`+want+`"`) {
				return
			}
		}
		t.Fatalf("%s: no %s in the report through B: %s\n%s", tag, want, body, b.logs.String())
	}
	a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), 201, "create team")

	update(map[string]string{"VULN-1": "lodash", "VULN-M": "minimist"})
	a.expect(a.push("team/app", "lodash", npmImage("lodash"), adminCreds), 201, "push lodash")
	b.expect(b.api(adminCreds, "POST", "/projects/team/repositories/app/artifacts/lodash/scan", nil), 202, "scan lodash")
	findings("lodash", "VULN-1")

	// A second update; B's directory still holds the first database.
	update(map[string]string{"VULN-1": "lodash", "VULN-2": "minimist"})
	a.expect(a.push("team/app", "minimist", npmImage("minimist"), adminCreds), 201, "push minimist")
	b.expect(b.api(adminCreds, "POST", "/projects/team/repositories/app/artifacts/minimist/scan", nil), 202, "scan minimist")
	findings("minimist", "VULN-2")

	// A third, which changes lodash: the re-match it queues runs on B.
	update(map[string]string{"VULN-1": "lodash", "VULN-2": "minimist", "VULN-3": "lodash"})
	findings("lodash", "VULN-3")

	status := func(s *authServer) (st struct {
		Digest   string `json:"digest"`
		Database struct {
			UpdatedAt time.Time `json:"updated_at"`
		} `json:"database"`
	}) {
		t.Helper()
		r := s.expect(s.api(adminCreds, "GET", "/vulndb", nil), 200, "vulndb status")
		if err := json.Unmarshal([]byte(r.body), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	sa, sb := status(a), status(b)
	if sa.Digest == "" || sa != sb || sa.Digest != a.s.bg.vulndb.Digest() {
		t.Errorf("GET /api/v1/vulndb: A %+v, B %+v", sa, sb)
	}
}

// TestReplicaWithoutSourcesWorksScanJobs: only replica A is configured
// with database sources; B, without any and with an empty data
// directory, is the replica that runs the jobs. B scans with the
// database A published (a scan asked through A, and one asked through B
// itself) and runs the re-match A's next update queued, instead of
// failing them as jobs of an unknown kind; a database update handed to
// B is put back for a replica with sources, not failed or run from
// sources nobody configured.
func TestReplicaWithoutSourcesWorksScanJobs(t *testing.T) {
	ctx := context.Background()
	shared := sharedBackends(t)
	feed := t.TempDir()
	fast := func(c *Config) {
		shared(c)
		c.Scan.DBUpdateInterval = 0
		c.Jobs.RetryBase, c.Jobs.RetryMax = 50*time.Millisecond, 500*time.Millisecond
	}
	a := startAuthServer(t, fast, func(c *Config) { c.Scan.DBSources = []string{feed} })
	b := startAuthServer(t, fast)
	if err := b.s.bg.start(ctx); err != nil {
		t.Fatal(err)
	}
	update := func(recs map[string]string) {
		t.Helper()
		writeNPMFeed(t, feed, recs)
		if _, err := a.s.bg.scans.UpdateDB(ctx); err != nil {
			t.Fatalf("update on A: %v", err)
		}
	}
	findings := func(tag, want string) {
		t.Helper()
		var body string
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			body = a.api(adminCreds, "GET", "/projects/team/repositories/app/artifacts/"+tag+"/vulnerabilities", nil).body
			var rep struct{ Scan struct{ Status string } }
			if json.Unmarshal([]byte(body), &rep) == nil && rep.Scan.Status == "done" && strings.Contains(body, `"`+want+`"`) {
				return
			}
		}
		t.Fatalf("%s: no %s in the report B made: %s\n%s", tag, want, body, b.logs.String())
	}
	a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), 201, "create team")
	update(map[string]string{"VULN-1": "lodash", "VULN-M": "minimist"})

	a.expect(a.push("team/app", "lodash", npmImage("lodash"), adminCreds), 201, "push lodash")
	a.expect(a.api(adminCreds, "POST", "/projects/team/repositories/app/artifacts/lodash/scan", nil), 202, "scan lodash through A")
	findings("lodash", "VULN-1")

	a.expect(a.push("team/app", "minimist", npmImage("minimist"), adminCreds), 201, "push minimist")
	b.expect(b.api(adminCreds, "POST", "/projects/team/repositories/app/artifacts/minimist/scan", nil), 202, "scan minimist through B")
	findings("minimist", "VULN-M")

	// The re-match A's update queues runs on B.
	update(map[string]string{"VULN-1": "lodash", "VULN-M": "minimist", "VULN-2": "lodash"})
	findings("lodash", "VULN-2")

	// An update job reaching B waits for a replica with sources.
	res, err := b.s.bg.queue.Insert(ctx, scanservice.UpdateDBArgs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A snoozed job is scheduled again, its attempt given back (river
	// does not count snoozes): it was worked, without error.
	var job *rivertype.JobRow
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if job, err = b.s.bg.queue.Job(ctx, res.Job.ID); err != nil {
			t.Fatal(err)
		}
		if job.State != rivertype.JobStateAvailable && job.State != rivertype.JobStateRunning {
			break
		}
	}
	if job.State != rivertype.JobStateScheduled || job.AttemptedAt == nil || job.Attempt != 0 || len(job.Errors) != 0 ||
		!job.ScheduledAt.After(time.Now()) {
		t.Errorf("update job on B: state %s, attempt %d (attempted at %v), errors %v, scheduled %s\n%s",
			job.State, job.Attempt, job.AttemptedAt, job.Errors, job.ScheduledAt, b.logs.String())
	}
}

// TestLeaderWithoutSourcesSchedulesUpdates: river's leader, which inserts
// the periodic jobs, may be a replica without database sources; it still
// queues the periodic update (and, unable to run it, puts it back for a
// replica with sources), or no database update would ever be scheduled.
func TestLeaderWithoutSourcesSchedulesUpdates(t *testing.T) {
	ctx := context.Background()
	shared := sharedBackends(t)
	feed := t.TempDir()
	writeNPMFeed(t, feed, map[string]string{"VULN-1": "lodash"})
	// A has sources but is not started: B is the only replica working
	// jobs, so river elects it.
	startAuthServer(t, shared, func(c *Config) { c.Scan.DBSources, c.Scan.DBUpdateInterval = []string{feed}, 0 })
	b := startAuthServer(t, shared, func(c *Config) { c.Scan.DBUpdateInterval = time.Hour })
	if err := b.s.bg.start(ctx); err != nil {
		t.Fatal(err)
	}
	var jobs []*rivertype.JobRow
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var err error
		if jobs, err = b.s.bg.queue.List(ctx, river.NewJobListParams().Kinds(scanservice.UpdateDBArgs{}.Kind())); err != nil {
			t.Fatal(err)
		}
		if len(jobs) == 1 && jobs[0].State == rivertype.JobStateScheduled {
			break
		}
	}
	if len(jobs) != 1 || jobs[0].State != rivertype.JobStateScheduled || len(jobs[0].Errors) != 0 {
		for _, j := range jobs {
			t.Logf("job %d: %s, errors %v", j.ID, j.State, j.Errors)
		}
		t.Fatalf("the leader without sources queued %d updates, want one put back for a replica with sources\n%s", len(jobs), b.logs.String())
	}
}
