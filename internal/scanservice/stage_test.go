package scanservice

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	"github.com/riverqueue/river"

	"berth.dev/berth/internal/custody"
	"berth.dev/berth/internal/registry"
	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/store"
)

// stageHarness adds the scan stage to a harness: project "team" has a
// scan key and the rule, and the service signs through an in-process
// registry over the harness's stores.
func stageHarness(t *testing.T, rule custody.Rule) (*harness, *custody.Service, *store.Remote) {
	t.Helper()
	h := newHarness(t)
	ctx := context.Background()
	mk := make([]byte, 32)
	rand.Read(mk)
	m, _ := custody.NewAESMaster(mk, "test")
	dir := filepath.Dir(h.feed)
	st0, err := custody.OpenSQLite(ctx, filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := custody.Open(ctx, custody.Options{Store: st0, Master: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Create(ctx, custody.NewKey{ProjectID: "id-team", Project: "team", Purpose: "scan"}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetRule(ctx, "id-team", "team", rule); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Options{Blobs: h.blobs, Meta: h.meta, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.NewInProcess(reg, "registry.test")
	if err != nil {
		t.Fatal(err)
	}
	h.svc.opts.Stages = &Stages{Custody: c, Store: st, Host: "registry.test",
		ProjectOf: func(repo string) (string, bool) {
			if strings.HasPrefix(repo, "team/") {
				return "id-team", true
			}
			return "", false
		},
		Audit: func(context.Context, string, string, string, error) {}}
	h.svc.opts.Stored = func(d digest.Digest) {
		h.mu.Lock()
		f := h.onStored
		h.mu.Unlock()
		if f != nil {
			f(d)
		}
	}
	return h, c, st
}

func verifyStage(ctx context.Context, c *custody.Service, st store.Store, repo string, d digest.Digest) (*sign.Result, error) {
	trust, err := c.Trust(ctx, "id-team", "scan")
	if err != nil {
		return nil, err
	}
	desc, err := st.Resolve(ctx, repo, d.String())
	if err != nil {
		return nil, err
	}
	return sign.Verify(ctx, st, sign.Target{Name: "registry.test/" + repo, Repo: repo, Manifest: desc}, trust,
		sign.VerifyOptions{Annotations: map[string]string{custody.AnnotationStage: custody.StageScan}})
}

// TestScanStageSigns: a push whose scan passes the rule is signed with
// the project's scan key (annotated dev.berth.stage=scan) and attested;
// one with a finding the rule refuses gets no signature; running the
// stage again adds nothing; a re-match that makes the signed image fail
// revokes its approval and announces it; a project without a rule gets
// nothing.
func TestScanStageSigns(t *testing.T) {
	h, c, st := stageHarness(t, custody.Rule{Stage: custody.StageScan, KeyPurpose: "scan", FailOn: "HIGH", Attest: true})
	ctx := context.Background()
	h.writeFeed(map[string][2]string{"GHSA-lodash-1": {"lodash", "4.17.21"}})
	if _, err := h.svc.UpdateDB(ctx); err != nil {
		t.Fatal(err)
	}
	clean := h.push("team/clean", "v1", "qs 6.10.1")
	vuln := h.push("team/vuln", "v1", "lodash 4.17.20")
	other := h.push("other/app", "v1", "minimist 1.2.5")
	h.waitIdle()

	res, err := verifyStage(ctx, c, st, "team/clean", clean)
	if err != nil || len(res.Verified) != 1 {
		t.Fatalf("passing image: %v %+v", err, res)
	}
	trust, _ := c.Trust(ctx, "id-team", "scan")
	desc, _ := st.Resolve(ctx, "team/clean", clean.String())
	atts, err := sign.VerifyAttestations(ctx, st, sign.Target{Name: "registry.test/team/clean", Repo: "team/clean", Manifest: desc}, trust,
		sign.VerifyOptions{PredicateType: "https://cosign.sigstore.dev/attestation/vuln/v1"})
	if err != nil || len(atts.Verified) != 1 {
		t.Errorf("vulnerability attestation: %v %+v", err, atts)
	}
	if _, err := verifyStage(ctx, c, st, "team/vuln", vuln); !errors.Is(err, sign.ErrNoSignatures) {
		t.Errorf("image with a HIGH finding: %v, want no signatures", err)
	}
	if ap, err := c.Approvals(ctx, "team/vuln", vuln); err != nil || len(ap) != 0 {
		t.Errorf("failing image has approvals %+v %v", ap, err)
	}
	if _, err := st.Resolve(ctx, "other/app", "sha256-"+other.Encoded()+".sig"); err == nil {
		t.Error("a project without a scan rule got a signature")
	}
	a, err := c.Approval(ctx, "team/clean", clean, custody.StageScan)
	if err != nil || a.State != custody.Approved {
		t.Fatalf("approval %+v %v", a, err)
	}

	// Again (a retry, a crash before the approval was recorded): no
	// second signature.
	c.RecordApproval(ctx, "id-team", custody.Approval{Digest: clean, Repository: "team/clean", Stage: custody.StageScan, KeyID: "other", State: custody.Approved, At: a.At})
	if _, err := h.queue.Insert(ctx, StageArgs{Digest: clean.String(), Repository: "team/clean"}, nil); err != nil {
		t.Fatal(err)
	}
	h.waitIdle()
	sig, err := st.Manifest(ctx, "team/clean", "sha256-"+clean.Encoded()+".sig")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(sig.Body), "dev.cosignproject.cosign/signature"); n != 1 {
		t.Errorf("%d signatures after the stage ran twice, want 1", n)
	}
	h.takeNotices()
	// Verdicts made on the image are forgotten once the revocation is
	// recorded, not only when the report that caused it is: a pull in
	// between would have counted the signature.
	var seen []string
	h.mu.Lock()
	h.onStored = func(d digest.Digest) {
		if d != clean {
			return
		}
		a, err := c.Approval(ctx, "team/clean", clean, custody.StageScan)
		h.mu.Lock()
		defer h.mu.Unlock()
		seen = append(seen, fmt.Sprintf("%s %v", a.State, err))
	}
	h.mu.Unlock()

	// A new advisory about qs: the re-match makes the image fail.
	h.writeFeed(map[string][2]string{"GHSA-lodash-1": {"lodash", "4.17.21"}, "GHSA-qs-1": {"qs", "6.10.3"}})
	if _, err := h.svc.UpdateDB(ctx); err != nil {
		t.Fatal(err)
	}
	h.waitIdle()
	a, err = c.Approval(ctx, "team/clean", clean, custody.StageScan)
	if err != nil || a.State != custody.Revoked || !strings.Contains(a.Reason, "GHSA-qs-1") {
		t.Fatalf("after the re-match: %+v %v, want revoked naming GHSA-qs-1", a, err)
	}
	h.mu.Lock()
	if len(seen) == 0 || seen[len(seen)-1] != custody.Revoked+" <nil>" {
		t.Errorf("Stored heard the image with its approval %q; the last, after the revocation, should see it revoked", seen)
	}
	h.mu.Unlock()
	var revoked []Notice
	for _, n := range h.takeNotices() {
		if n.Type == NoticeApprovalRevoked {
			revoked = append(revoked, n)
		}
	}
	if len(revoked) != 1 || revoked[0].Repository != "team/clean" || revoked[0].Approval == nil || revoked[0].Approval.State != custody.Revoked {
		t.Errorf("revocation notices: %+v", revoked)
	}
}

// TestStageJobsOfNewerReportsAreNotAbsorbed: a stage job waiting (or
// running) for one report version absorbs another for the same version,
// but not one for a newer report: that job may already have made its last
// check, and the newer report (a re-match that fails the rule) must still
// be judged.
func TestStageJobsOfNewerReportsAreNotAbsorbed(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	// Scheduled an hour ahead, so that no worker takes them meanwhile.
	later := &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)}
	d := "sha256:" + strings.Repeat("ab", 32)
	for _, c := range []struct {
		version int64
		skipped bool
	}{
		{1, false},
		{1, true},
		{2, false},
	} {
		res, err := h.queue.Insert(ctx, StageArgs{Digest: d, Repository: "team/app", Version: c.version}, later)
		if err != nil {
			t.Fatal(err)
		}
		if res.UniqueSkippedAsDuplicate != c.skipped {
			t.Errorf("stage job for report version %d: skipped as a duplicate %v, want %v", c.version, res.UniqueSkippedAsDuplicate, c.skipped)
		}
	}
}

// stagePolicy is a scan stage's policy document with spec.
func stagePolicy(spec string) string {
	return "apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: stage}\nspec:\n" + spec
}

// TestScanStagePolicy: a rule that names a policy signs what passes it
// (an allow-listed advisory included) and nothing that fails it (a denied
// advisory, a private key in the image), and a re-match that makes a
// signed image fail revokes its approval with the policy's own reason.
func TestScanStagePolicy(t *testing.T) {
	t.Run("vulnerabilities", func(t *testing.T) {
		rule := custody.Rule{Stage: custody.StageScan, KeyPurpose: "scan", Attest: true,
			Policy: stagePolicy("  vulnerabilities:\n    severity: HIGH\n    allow: [{id: GHSA-minimist-1, reason: not reachable}]\n")}
		h, c, st := stageHarness(t, rule)
		ctx := context.Background()
		h.writeFeed(map[string][2]string{"GHSA-lodash-1": {"lodash", "4.17.21"}, "GHSA-minimist-1": {"minimist", "1.2.6"}})
		if _, err := h.svc.UpdateDB(ctx); err != nil {
			t.Fatal(err)
		}
		clean := h.push("team/clean", "v1", "qs 6.10.1")
		allowed := h.push("team/allowed", "v1", "minimist 1.2.5")
		vuln := h.push("team/vuln", "v1", "lodash 4.17.20")
		h.waitIdle()
		for repo, d := range map[string]digest.Digest{"team/clean": clean, "team/allowed": allowed} {
			if res, err := verifyStage(ctx, c, st, repo, d); err != nil || len(res.Verified) != 1 {
				t.Errorf("%s passes the policy, want it signed: %v %+v", repo, err, res)
			}
		}
		if _, err := verifyStage(ctx, c, st, "team/vuln", vuln); !errors.Is(err, sign.ErrNoSignatures) {
			t.Errorf("image the policy denies: %v, want no signatures", err)
		}
		// The attestation names the policy it passed.
		desc, _ := st.Resolve(ctx, "team/clean", clean.String())
		trust, _ := c.Trust(ctx, "id-team", "scan")
		atts, err := sign.VerifyAttestations(ctx, st, sign.Target{Name: "registry.test/team/clean", Repo: "team/clean", Manifest: desc}, trust,
			sign.VerifyOptions{PredicateType: "https://cosign.sigstore.dev/attestation/vuln/v1"})
		// Its subject carries the stage's annotation, so a revocation
		// stops it counting as it stops the signature.
		if err != nil || len(atts.Verified) != 1 || !strings.Contains(string(atts.Verified[0].Payload), "--policy="+rule.PolicyVersion()) ||
			strings.Contains(string(atts.Verified[0].Payload), "--fail-on") ||
			!strings.Contains(string(atts.Verified[0].Payload), `"annotations":{"dev.berth.stage":"scan"}`) {
			t.Errorf("vulnerability attestation: %v %+v", err, atts)
		}
		h.takeNotices()

		h.writeFeed(map[string][2]string{"GHSA-lodash-1": {"lodash", "4.17.21"}, "GHSA-minimist-1": {"minimist", "1.2.6"},
			"GHSA-qs-1": {"qs", "6.10.3"}})
		if _, err := h.svc.UpdateDB(ctx); err != nil {
			t.Fatal(err)
		}
		h.waitIdle()
		const why = "ImagePolicy/stage: vulnerability: GHSA-qs-1"
		a, err := c.Approval(ctx, "team/clean", clean, custody.StageScan)
		if err != nil || a.State != custody.Revoked || !strings.Contains(a.Reason, why) {
			t.Fatalf("after the re-match: %+v %v, want revoked with %q", a, err, why)
		}
		if a, err := c.Approval(ctx, "team/allowed", allowed, custody.StageScan); err != nil || a.State != custody.Approved {
			t.Errorf("the allow-listed image after the re-match: %+v %v, want still approved", a, err)
		}
		var revoked []Notice
		for _, n := range h.takeNotices() {
			if n.Type == NoticeApprovalRevoked {
				revoked = append(revoked, n)
			}
		}
		if len(revoked) != 1 || revoked[0].Repository != "team/clean" || revoked[0].Approval == nil || !strings.Contains(revoked[0].Approval.Reason, why) {
			t.Errorf("revocation notices: %+v", revoked)
		}
	})
	t.Run("secrets", func(t *testing.T) {
		// No fail_on: the vulnerable image passes a policy about secrets.
		h, c, st := stageHarness(t, custody.Rule{Stage: custody.StageScan, KeyPurpose: "scan", Policy: stagePolicy("  secrets: {deny: true}\n")})
		h.svc.opts.Secrets = true
		ctx := context.Background()
		h.writeFeed(map[string][2]string{"GHSA-lodash-1": {"lodash", "4.17.21"}})
		if _, err := h.svc.UpdateDB(ctx); err != nil {
			t.Fatal(err)
		}
		plain := h.push("team/plain", "v1", "lodash 4.17.20")
		keyed := h.pushLayer("team/keyed", "v1", layerWithKey(t), types.OCIUncompressedLayer)
		h.waitIdle()
		if res, err := verifyStage(ctx, c, st, "team/plain", plain); err != nil || len(res.Verified) != 1 {
			t.Errorf("image without secrets: %v %+v, want it signed", err, res)
		}
		if _, err := verifyStage(ctx, c, st, "team/keyed", keyed); !errors.Is(err, sign.ErrNoSignatures) {
			t.Errorf("image with a private key: %v, want no signatures", err)
		}
		if rec := h.report(keyed); len(rec.Report.Secrets) == 0 {
			t.Fatalf("the scan found no secret in the keyed image: the test proves nothing")
		}
		if ap, err := c.Approvals(ctx, "team/keyed", keyed); err != nil || len(ap) != 0 {
			t.Errorf("failing image has approvals %+v %v", ap, err)
		}
	})
}

// layerWithKey is an uncompressed layer holding an npm package and an EC
// private key.
func layerWithKey(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalECPrivateKey(k)
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, f := range []struct{ name, body string }{
		{"app/node_modules/qs/package.json", `{"name":"qs","version":"6.10.1","license":"MIT"}`},
		{"etc/ssl/private/app.key", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))},
	} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o600, Size: int64(len(f.body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(f.body))
	}
	tw.Close()
	return tb.Bytes()
}
