package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"berth.dev/berth/internal/testpeers"
)

// kube is a real kube-apiserver (with its etcd) on loopback, spoken to
// over its REST API with a static admin token.
type kube struct {
	url    string
	token  string
	client *http.Client
}

// startKube starts etcd and kube-apiserver as scripts/peers.sh builds
// them. No controller-manager or scheduler runs: objects are stored, not
// run, which is all admission needs.
func startKube(t *testing.T) *kube {
	t.Helper()
	etcd, apiserver := testpeers.Tool(t, "etcd"), testpeers.Tool(t, "kube-apiserver")
	dir := t.TempDir()
	clientAddr, peerAddr := freeAddr(t), freeAddr(t)
	startProc(t, "etcd", etcd, "--name", "default", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", "http://"+clientAddr, "--advertise-client-urls", "http://"+clientAddr,
		"--listen-peer-urls", "http://"+peerAddr, "--initial-advertise-peer-urls", "http://"+peerAddr,
		"--initial-cluster", "default=http://"+peerAddr, "--log-level", "warn")
	waitFor(t, "etcd", 60*time.Second, func() bool {
		resp, err := http.Get("http://" + clientAddr + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	// The service account signing key the apiserver insists on.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalECPrivateKey(key)
	saKey := filepath.Join(dir, "sa.key")
	os.WriteFile(saKey, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	saPub := filepath.Join(dir, "sa.pub")
	os.WriteFile(saPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600)
	k := &kube{token: "berth-e2e-admin-token"}
	tokens := filepath.Join(dir, "tokens.csv")
	os.WriteFile(tokens, []byte(k.token+`,admin,admin,"system:masters"`+"\n"), 0o600)
	addr := freeAddr(t)
	host, port, _ := strings.Cut(addr, ":")
	startProc(t, "kube-apiserver", apiserver,
		"--etcd-servers", "http://"+clientAddr,
		"--bind-address", host, "--advertise-address", host, "--secure-port", port,
		"--cert-dir", filepath.Join(dir, "certs"),
		"--token-auth-file", tokens, "--authorization-mode", "RBAC",
		"--service-account-key-file", saPub, "--service-account-signing-key-file", saKey,
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-cluster-ip-range", "10.0.0.0/24",
		"--endpoint-reconciler-type", "none")
	k.url = "https://" + addr
	// The apiserver's own serving certificate is self-signed in cert-dir;
	// the test talks to it as its admin would with insecure-skip-verify.
	k.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	waitFor(t, "kube-apiserver", 120*time.Second, func() bool {
		status, _ := k.do(t, "GET", "/readyz", nil)
		return status == 200
	})
	return k
}

func (k *kube) do(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, k.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+k.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (k *kube) must(t *testing.T, method, path string, body any, want int) []byte {
	t.Helper()
	status, b := k.do(t, method, path, body)
	if status != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, status, b, want)
	}
	return b
}

func startProc(t *testing.T, what, bin string, args ...string) {
	t.Helper()
	var logs bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", what, err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			out := logs.String()
			if len(out) > 8000 {
				out = out[len(out)-8000:]
			}
			t.Logf("%s logs (tail):\n%s", what, out)
		}
	})
}

func waitFor(t *testing.T, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(200 * time.Millisecond) {
		if ok() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %s", what, limit)
		}
	}
}

func pod(name, image string) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": name},
		"spec": map[string]any{"containers": []any{map[string]any{"name": "app", "image": image}}}}
}

// registerBerth registers berth's webhooks at url as berth admission
// manifests prints them, makes the namespace prod that opts in, and
// waits until the apiserver (which picks configurations up
// asynchronously) sends berth the reviews: until a pod naming refused
// is refused. It returns that answer.
func (k *kube) registerBerth(t *testing.T, env []string, url, ca, refused string) (int, []byte) {
	t.Helper()
	out := run(t, env, berthBin, "admission", "manifests", "--url", url, "--ca-bundle", ca, "--timeout", "10")
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			break
		}
		kind := strings.ToLower(fmt.Sprint(doc["kind"])) + "s"
		k.must(t, "POST", "/apis/admissionregistration.k8s.io/v1/"+kind, doc, 201)
	}
	k.must(t, "POST", "/api/v1/namespaces", map[string]any{"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": "prod", "labels": map[string]any{"berth.dev/admission": "enabled"}}}, 201)
	k.must(t, "POST", "/api/v1/namespaces/prod/serviceaccounts", map[string]any{"apiVersion": "v1", "kind": "ServiceAccount",
		"metadata": map[string]any{"name": "default"}}, 201)
	var status int
	var body []byte
	for i := 0; ; i++ {
		status, body = k.do(t, "POST", "/api/v1/namespaces/prod/pods", pod(fmt.Sprintf("probe-%d", i), refused))
		if status != 201 || i > 150 {
			return status, body
		}
		k.do(t, "DELETE", fmt.Sprintf("/api/v1/namespaces/prod/pods/probe-%d", i), nil)
		time.Sleep(200 * time.Millisecond)
	}
}

// TestAdmissionWithKubeAPIServer: a real kube-apiserver sends the
// AdmissionReviews. berth's webhooks are registered by URL with the CA
// bundle berth wrote; a Pod and a Deployment with unsigned images are
// rejected with berth's message; signed ones are admitted with their
// images pinned to the verified digests.
func TestAdmissionWithKubeAPIServer(t *testing.T) {
	crane := testpeers.Tool(t, "crane")
	k := startKube(t)
	layout := untar(t, testpeers.Shared(t, "images", "debian-bookworm-minbase.oci.tar"))
	reg := startBerth(t)
	home := t.TempDir()
	env := []string{"HOME=" + home, "BERTH_KEY_PASSWORD=e2e"}
	base := reg.Addr + "/prod/app"
	run(t, env, crane, "push", "--insecure", layout, base+":base")
	digests := map[string]string{}
	for _, tag := range []string{"signed", "unsigned"} {
		out := strings.TrimSpace(run(t, env, crane, "mutate", "--insecure", "--label", "variant="+tag, "-t", base+":"+tag, base+":base"))
		digests[tag] = out[strings.LastIndex(out, "@")+1:]
	}
	keys := t.TempDir()
	run(t, env, berthBin, "key", "generate", "--output-key-prefix", filepath.Join(keys, "release"))
	run(t, env, berthBin, "sign", base+"@"+digests["signed"], "--key", filepath.Join(keys, "release.key"))
	pub, _ := os.ReadFile(filepath.Join(keys, "release.pub"))
	pol := filepath.Join(keys, "policy.yaml")
	os.WriteFile(pol, []byte(fmt.Sprintf(`apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: signed-only}
spec:
  images: [{glob: "**"}]
  authorities:
  - name: release
    key:
      data: |
        %s
`, strings.ReplaceAll(strings.TrimSpace(string(pub)), "\n", "\n        "))), 0o600)

	// berth's webhook, on loopback with a certificate for 127.0.0.1.
	hookAddr := freeAddr(t)
	ca := filepath.Join(keys, "ca.pem")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hook := exec.CommandContext(ctx, berthBin, "admission", "serve", "--addr", hookAddr, "--policy", pol, "--tls-self-signed", "--ca-out", ca)
	var hookLogs bytes.Buffer
	hook.Stdout, hook.Stderr = &hookLogs, &hookLogs
	if err := hook.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hook.Process.Signal(os.Interrupt)
		hook.Wait()
		if t.Failed() {
			t.Logf("webhook logs:\n%s", hookLogs.String())
		}
	})
	waitFor(t, "webhook", 30*time.Second, func() bool { _, err := os.Stat(ca); return err == nil })

	status, body := k.registerBerth(t, env, "https://"+hookAddr, ca, base+":unsigned")
	if status != 403 || !strings.Contains(string(body), `denied the request: berth: containers[0] (app): `+base+":unsigned@"+digests["unsigned"]+
		" is not allowed: ClusterImagePolicy/signed-only: authority: no authority passed: authority release: not signed by [release]") {
		t.Fatalf("unsigned pod: %d %s", status, body)
	}

	b := k.must(t, "POST", "/api/v1/namespaces/prod/pods", pod("signed", base+":signed"), 201)
	var created struct {
		Spec struct{ Containers []struct{ Image string } }
	}
	json.Unmarshal(b, &created)
	if want := base + ":signed@" + digests["signed"]; len(created.Spec.Containers) != 1 || created.Spec.Containers[0].Image != want {
		t.Errorf("signed pod's image %+v, want it pinned to %s", created.Spec.Containers, want)
	}

	deployment := func(name, image string) map[string]any {
		labels := map[string]any{"app": name}
		return map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": name},
			"spec": map[string]any{"replicas": 1, "selector": map[string]any{"matchLabels": labels},
				"template": map[string]any{"metadata": map[string]any{"labels": labels},
					"spec": map[string]any{"containers": []any{map[string]any{"name": "web", "image": image}},
						"initContainers": []any{map[string]any{"name": "init", "image": image}}}}}}
	}
	status, body = k.do(t, "POST", "/apis/apps/v1/namespaces/prod/deployments", deployment("bad", base+":unsigned"))
	if status != 403 || !strings.Contains(string(body), "initContainers[0] (init): "+base+":unsigned@"+digests["unsigned"]+" is not allowed") {
		t.Errorf("unsigned deployment: %d %s", status, body)
	}
	b = k.must(t, "POST", "/apis/apps/v1/namespaces/prod/deployments", deployment("good", base+":signed"), 201)
	var dep struct {
		Spec struct {
			Template struct {
				Spec struct{ Containers, InitContainers []struct{ Image string } }
			}
		}
	}
	json.Unmarshal(b, &dep)
	want := base + ":signed@" + digests["signed"]
	if c := dep.Spec.Template.Spec; len(c.Containers) != 1 || c.Containers[0].Image != want || c.InitContainers[0].Image != want {
		t.Errorf("signed deployment's images %+v, want them pinned to %s", c, want)
	}
	// A namespace that did not opt in is not checked.
	k.must(t, "POST", "/api/v1/namespaces", map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "dev"}}, 201)
	k.must(t, "POST", "/api/v1/namespaces/dev/serviceaccounts", map[string]any{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": map[string]any{"name": "default"}}, 201)
	k.must(t, "POST", "/api/v1/namespaces/dev/pods", pod("free", base+":unsigned"), 201)
}

// TestAdmissionProjectPolicyWithKubeAPIServer: berth serve mounts its
// webhook for the projects' policies alone (--admission-project-policies);
// a real kube-apiserver refuses a pod naming an image of berth's that the
// project's policy refuses, with the refusal the pull gets, and admits
// the signed one, pinned. The webhook is reached through a TLS proxy (the
// apiserver calls webhooks over HTTPS; berth serves plain HTTP on
// loopback here), as an ingress would front it.
func TestAdmissionProjectPolicyWithKubeAPIServer(t *testing.T) {
	crane := testpeers.Tool(t, "crane")
	k := startKube(t)
	layout := untar(t, testpeers.Shared(t, "images", "debian-bookworm-minbase.oci.tar"))
	s := startBerthAuth(t, "--admission-project-policies")
	home := t.TempDir()
	env := []string{"HOME=" + home, "BERTH_KEY_PASSWORD=e2e"}
	if _, stderr, code := berthRun(t, env, s.Password+"\n", "login", s.Addr, "-u", "admin", "--password-stdin"); code != 0 {
		t.Fatalf("login: %s", stderr)
	}
	// Public: the apiserver presents no credentials to the webhook.
	apiCall(t, s, "POST", "/api/v1/projects", map[string]any{"name": "prod"}, 201, nil)
	apiCall(t, s, "PATCH", "/api/v1/projects/prod", map[string]any{"public": true}, 200, nil)
	base := s.Addr + "/prod/app"
	run(t, env, crane, "push", "--insecure", layout, base+":base")
	digests := map[string]string{}
	for _, tag := range []string{"signed", "unsigned"} {
		out := strings.TrimSpace(run(t, env, crane, "mutate", "--insecure", "--label", "variant="+tag, "-t", base+":"+tag, base+":base"))
		digests[tag] = out[strings.LastIndex(out, "@")+1:]
	}
	keys := t.TempDir()
	run(t, env, berthBin, "key", "generate", "--output-key-prefix", filepath.Join(keys, "release"))
	run(t, env, berthBin, "sign", base+"@"+digests["signed"], "--key", filepath.Join(keys, "release.key"))
	pub, _ := os.ReadFile(filepath.Join(keys, "release.pub"))
	doc := fmt.Sprintf("apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: release}\nspec:\n  signers:\n    keys:\n    - name: release\n      data: |\n        %s\n",
		strings.ReplaceAll(strings.TrimSpace(string(pub)), "\n", "\n        "))
	req, _ := http.NewRequest("PUT", "http://"+s.Addr+"/api/v1/projects/prod/policy", strings.NewReader(doc))
	req.Header.Set("Content-Type", "application/yaml")
	req.SetBasicAuth("admin", s.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("put the project's policy: %d %s", resp.StatusCode, b)
	}

	// The refusal an anonymous pull gets.
	req, _ = http.NewRequest("GET", "http://"+s.Addr+"/v2/prod/app/manifests/unsigned", nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var pulled struct{ Errors []struct{ Message string } }
	json.NewDecoder(resp.Body).Decode(&pulled)
	resp.Body.Close()
	if resp.StatusCode != 403 || len(pulled.Errors) != 1 || !strings.HasPrefix(pulled.Errors[0].Message, "denied by the policy of project prod: ImagePolicy/release: signature: not signed by 1 of [release]") {
		t.Fatalf("anonymous pull of the unsigned image: %d %+v", resp.StatusCode, pulled)
	}

	target, err := neturl.Parse("http://" + s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(target))
	t.Cleanup(proxy.Close)
	ca := filepath.Join(keys, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	status, body := k.registerBerth(t, env, proxy.URL+"/admission", ca, base+":unsigned")
	if status != 403 || !strings.Contains(string(body), `denied the request: berth: containers[0] (app): `+base+":unsigned@"+digests["unsigned"]+" is not allowed: "+pulled.Errors[0].Message) {
		t.Fatalf("unsigned pod: %d %s", status, body)
	}
	b = k.must(t, "POST", "/api/v1/namespaces/prod/pods", pod("signed", base+":signed"), 201)
	var created struct {
		Spec struct{ Containers []struct{ Image string } }
	}
	json.Unmarshal(b, &created)
	if want := base + ":signed@" + digests["signed"]; len(created.Spec.Containers) != 1 || created.Spec.Containers[0].Image != want {
		t.Errorf("signed pod's image %+v, want it pinned to %s", created.Spec.Containers, want)
	}
}
