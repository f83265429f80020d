package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"berth.dev/berth/internal/policy/policytest"
)

// TestAdmissionServe starts the webhook with a self-signed certificate and
// sends it a pod over HTTPS, trusting only the CA bundle it wrote.
func TestAdmissionServe(t *testing.T) {
	reg := policytest.NewRegistry(t, nil)
	ci := policytest.NewKey(t, "ci")
	signed := reg.Push(t, "team/app", "v1", "v1")
	policytest.SignTarget(t, reg.Store, signed, ci, false, nil)
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.yaml")
	doc := fmt.Sprintf("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  signers:\n    keys:\n    - name: ci\n      data: |\n%s\n", ci.Indented(8))
	if err := os.WriteFile(pol, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ca := filepath.Join(dir, "ca.pem")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		cmd := newRootCmd()
		cmd.SetArgs([]string{"admission", "serve", "--addr", addr, "--policy", pol, "--tls-self-signed", "--ca-out", ca})
		done <- cmd.ExecuteContext(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	var client *http.Client
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if pem, err := os.ReadFile(ca); err == nil && len(pem) > 0 {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
			if resp, err := client.Get("https://" + addr + "/healthz"); err == nil {
				resp.Body.Close()
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("webhook did not start")
		}
	}
	review := func(image string) map[string]any {
		body := fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"name":"app","image":%q}]}}}}`, image)
		resp, err := client.Post("https://"+addr+"/mutate?timeout=10s", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Response map[string]any }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out.Response
	}
	r := review(reg.Host + "/team/app:v1")
	patch, _ := base64.StdEncoding.DecodeString(fmt.Sprint(r["patch"]))
	if r["allowed"] != true || !strings.Contains(string(patch), signed.Manifest.Digest.String()) {
		t.Errorf("signed: %v %s", r, patch)
	}
	unsigned := reg.Push(t, "team/app", "v2", "v2")
	r = review(reg.Host + "/team/app:v2")
	if r["allowed"] != false || !strings.Contains(fmt.Sprint(r["status"]), "not signed by 1 of [ci]") {
		t.Errorf("unsigned %s: %v", unsigned.Manifest.Digest, r)
	}
}

// TestAdmissionManifests: the printed objects are the ones a cluster
// needs, the configurations carry the CA bundle, the opt-in label, the
// timeout and the failure policy.
func TestAdmissionManifests(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  tags: {deny: [latest]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, newRootCmd(), "admission", "manifests", "--policy", pol, "--timeout", "5")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader([]byte(out)))
	var kinds []string
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			break
		}
		kinds = append(kinds, fmt.Sprint(doc["kind"]))
		if strings.HasSuffix(fmt.Sprint(doc["kind"]), "WebhookConfiguration") {
			hook := doc["webhooks"].([]any)[0].(map[string]any)
			cc := hook["clientConfig"].(map[string]any)
			if hook["timeoutSeconds"] != 5 || hook["failurePolicy"] != "Fail" || cc["caBundle"] == "" ||
				fmt.Sprint(hook["namespaceSelector"]) != "map[matchLabels:map[berth.dev/admission:enabled]]" {
				t.Errorf("%s: %v", doc["kind"], hook)
			}
		}
	}
	if got := strings.Join(kinds, ","); got != "ConfigMap,Secret,Deployment,Service,ValidatingWebhookConfiguration,MutatingWebhookConfiguration" {
		t.Errorf("kinds %s", got)
	}
}
