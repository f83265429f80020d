package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/admission"
	"berth.dev/berth/internal/policy/policytest"
)

// TestAdmissionEnforcesProjectPolicies: the admission webhook of berth
// serve refuses a pod naming an image of this registry that its
// project's policy refuses, with the refusal its pull would get, whether
// it is mounted for project policies alone or with an admission policy
// file of its own (then both must allow). Warn mode admits with a
// warning, a project without a policy is not constrained, a policy put
// or deleted is seen by the next review, and a caller that may not pull
// the project sees its images as absent.
func TestAdmissionEnforcesProjectPolicies(t *testing.T) {
	for _, mode := range []string{"project policies alone", "with an admission policy file"} {
		t.Run(mode, func(t *testing.T) {
			ownFile := mode == "with an admission policy file"
			a := startAuthServer(t, func(c *Config) {
				if !ownFile {
					c.Admission.ProjectPolicies = true
					return
				}
				// The webhook's own policy refuses the tag latest.
				pol := filepath.Join(t.TempDir(), "policy.yaml")
				if err := os.WriteFile(pol, []byte("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: no-latest}\nspec:\n  tags: {deny: [latest]}\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				c.Admission.Policy = pol
			})
			a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), 201, "create team")
			a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "open"}), 201, "create open")
			st, host := adminStore(t, a)
			ci := policytest.NewKey(t, "ci")
			signed := policytest.PushTo(t, st, host, "team/app", "signed", "signed")
			policytest.SignTarget(t, st, signed, ci, false, nil)
			latest := policytest.PushTo(t, st, host, "team/app", "latest", "latest")
			policytest.SignTarget(t, st, latest, ci, false, nil)
			unsigned := policytest.PushTo(t, st, host, "team/app", "unsigned", "unsigned")
			policytest.PushTo(t, st, host, "open/app", "unsigned", "open unsigned")
			doc := fmt.Sprintf("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: release}\nspec:\n  signers:\n    keys:\n    - name: ci\n      data: |\n%s\n", ci.Indented(8))
			a.expect(putPolicy(a, "team", doc), 200, "team's policy")
			runtime := puller(t, a, "team")
			openRuntime := puller(t, a, "open")

			// The refusal the runtime's pull gets.
			r := a.expect(a.do("GET", "/v2/team/app/manifests/unsigned", nil, append(runtime, "Accept", "application/vnd.oci.image.manifest.v1+json")...), 403, "the runtime's pull")
			var pulled struct{ Errors []struct{ Message string } }
			if err := json.Unmarshal([]byte(r.body), &pulled); err != nil || len(pulled.Errors) != 1 || !strings.HasPrefix(pulled.Errors[0].Message, "denied by the policy of project team: ") {
				t.Fatalf("pull refusal %s", r.body)
			}
			pullRefusal := pulled.Errors[0].Message

			review := func(image string, creds []string) *admission.Response {
				t.Helper()
				body := fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"name":"app","image":%q}]}}}}`, image)
				r := a.do("POST", "/admission/validate", []byte(body), append(creds, "Content-Type", "application/json")...)
				var rev admission.Review
				if r.status != 200 || json.Unmarshal([]byte(r.body), &rev) != nil || rev.Response == nil {
					t.Fatalf("review of %s: %d %s", image, r.status, r.body)
				}
				return rev.Response
			}
			type want struct {
				allowed bool
				message string // in the refusal
				warning string // among the warnings
			}
			check := func(step, image string, creds []string, w want) {
				t.Helper()
				resp := review(image, creds)
				var msg string
				if resp.Result != nil {
					msg = resp.Result.Message
				}
				if resp.Allowed != w.allowed || !strings.Contains(msg, w.message) {
					t.Errorf("%s: %s: allowed %v %q, want %v with %q", step, image, resp.Allowed, msg, w.allowed, w.message)
				}
				if w.warning != "" && !strings.Contains(strings.Join(resp.Warnings, "\n"), w.warning) {
					t.Errorf("%s: %s: warnings %q, want %q", step, image, resp.Warnings, w.warning)
				}
				if w.warning == "" && len(resp.Warnings) > 0 {
					t.Errorf("%s: %s: warnings %q, want none", step, image, resp.Warnings)
				}
			}
			refused := want{message: "berth: containers[0] (app): " + host + "/team/app:unsigned@" + unsigned.Manifest.Digest.String() + " is not allowed: " + pullRefusal}
			latestAnswer := want{allowed: true}
			if ownFile {
				latestAnswer = want{message: `ImagePolicy/no-latest: tag: tag "latest" is refused`}
			}
			for _, tc := range []struct {
				step, image string
				creds       []string
				want        want
			}{
				{"unsigned, by tag", host + "/team/app:unsigned", runtime, refused},
				{"unsigned, by digest", host + "/team/app@" + unsigned.Manifest.Digest.String(), runtime, want{message: "is not allowed: " + pullRefusal}},
				{"unsigned, asked by whoever may push", host + "/team/app:unsigned", adminCreds, refused},
				{"signed", host + "/team/app:signed", runtime, want{allowed: true}},
				{"signed, under the webhook's own policy too", host + "/team/app:latest", runtime, latestAnswer},
				{"a project without a policy", host + "/open/app:unsigned", openRuntime, want{allowed: true}},
				{"a caller that may not pull the project", host + "/team/app:signed", nil, want{message: "not found in its registry"}},
			} {
				check(tc.step, tc.image, tc.creds, tc.want)
			}
			if !ownFile {
				// No policy of its own: another registry's images are
				// not looked up.
				check("another registry's image", "registry.invalid/library/busybox:1", runtime, want{allowed: true})
			}

			// Warn mode admits, saying why.
			a.expect(putPolicy(a, "team", strings.Replace(doc, "spec:\n", "spec:\n  mode: warn\n", 1)), 200, "warn policy")
			check("warn mode", host+"/team/app:unsigned", runtime, want{allowed: true, warning: "containers[0] (app): ImagePolicy/release: signature: not signed by 1 of [ci]"})

			// A policy put, then deleted, is seen by the next review.
			a.expect(putPolicy(a, "open", doc), 200, "open's policy")
			check("policy put since", host+"/open/app:unsigned", openRuntime, want{message: "denied by the policy of project open: ImagePolicy/release: signature: not signed by 1 of [ci]"})
			a.expect(a.api(adminCreds, "DELETE", "/projects/open/policy", nil), 204, "delete open's policy")
			check("policy deleted since", host+"/open/app:unsigned", openRuntime, want{allowed: true})
		})
	}
}

// TestAdmissionProjectPoliciesNeedAuthentication: with authentication off
// projects have no policies, so a webhook for them alone is a
// configuration error rather than one that admits everything.
func TestAdmissionProjectPoliciesNeedAuthentication(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Data = t.TempDir()
	cfg.Auth.Disabled = true
	cfg.Admission.ProjectPolicies = true
	s, err := New(context.Background(), cfg, Options{})
	if err == nil {
		s.Close()
		t.Fatal("started")
	}
	if !strings.Contains(err.Error(), "admission.project_policies: projects have no policies with authentication off") {
		t.Errorf("error %v", err)
	}
}
