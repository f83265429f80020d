// Package helm_test checks the Helm chart in deploy/helm/berth with the
// real helm and kubeconform (scripts/peers.sh installs them): lint, the
// objects each mode renders, the values each mode refuses without, and
// every rendered object against Kubernetes' own schemas, strictly.
package helm_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"berth.dev/berth/internal/auth/token"
	"berth.dev/berth/internal/testpeers"
)

const chart = "berth"

// scaleOut are the values a scale-out install gives.
var scaleOut = []string{"--set", "mode=scaleout", "--set", "postgres.existingSecret=berth-postgres",
	"--set", "s3.url=s3://registry?endpoint=https://s3.example.com&region=eu-west-1", "--set", "s3.existingSecret=berth-s3"}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(testpeers.Tool(t, "helm"), args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir())
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String() + errOut.String(), err
}

// render runs helm template and decodes the objects.
func render(t *testing.T, values ...string) (string, []map[string]any) {
	t.Helper()
	out, err := helm(t, append([]string{"template", "reg", chart}, values...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", values, err, out)
	}
	var objs []map[string]any
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var o map[string]any
		if err := dec.Decode(&o); err != nil {
			break
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
	return out, objs
}

func kinds(objs []map[string]any) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o["kind"].(string))
	}
	slices.Sort(out)
	return out
}

func find(objs []map[string]any, kind string) map[string]any {
	for _, o := range objs {
		if o["kind"] == kind {
			return o
		}
	}
	return nil
}

// dig walks maps and the first element of lists.
func dig(v any, path ...string) any {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			if len(x) == 0 {
				return nil
			}
			v = x[0].(map[string]any)[p]
		default:
			return nil
		}
	}
	return v
}

func TestLint(t *testing.T) {
	for _, values := range [][]string{nil, scaleOut} {
		if out, err := helm(t, append([]string{"lint", "--strict", chart}, values...)...); err != nil {
			t.Errorf("helm lint %v: %v\n%s", values, err, out)
		}
	}
}

func TestEmbeddedMode(t *testing.T) {
	_, objs := render(t)
	if got, want := kinds(objs), []string{"Secret", "Service", "StatefulSet"}; !slices.Equal(got, want) {
		t.Fatalf("embedded renders %v, want %v", got, want)
	}
	sts := find(objs, "StatefulSet")
	if dig(sts, "spec", "replicas") != 1 {
		t.Errorf("embedded replicas = %v, want 1", dig(sts, "spec", "replicas"))
	}
	if dig(sts, "spec", "volumeClaimTemplates", "metadata", "name") != "data" {
		t.Error("embedded mode keeps its data directory on no volume claim")
	}
	checkPod(t, dig(sts, "spec", "template").(map[string]any))
	checkSecret(t, find(objs, "Secret"))
}

func TestScaleOutMode(t *testing.T) {
	_, objs := render(t, append(scaleOut, "--set", "replicaCount=3")...)
	if got, want := kinds(objs), []string{"Deployment", "PodDisruptionBudget", "Secret", "Service"}; !slices.Equal(got, want) {
		t.Fatalf("scale-out renders %v, want %v", got, want)
	}
	dep := find(objs, "Deployment")
	if dig(dep, "spec", "replicas") != 3 {
		t.Errorf("replicas = %v, want 3", dig(dep, "spec", "replicas"))
	}
	if dig(find(objs, "PodDisruptionBudget"), "spec", "minAvailable") != 1 {
		t.Error("the disruption budget keeps no replica up")
	}
	pod := dig(dep, "spec", "template").(map[string]any)
	checkPod(t, pod)
	env := map[string]any{}
	for _, e := range dig(pod, "spec", "containers", "env").([]any) {
		env[e.(map[string]any)["name"].(string)] = e
	}
	for name, secret := range map[string]string{"BERTH_STORAGE_META": "berth-postgres", "AWS_ACCESS_KEY_ID": "berth-s3",
		"AWS_SECRET_ACCESS_KEY": "berth-s3", "BERTH_ADMIN_PASSWORD": "reg-berth-generated"} {
		if got := dig(env[name], "valueFrom", "secretKeyRef", "name"); got != secret {
			t.Errorf("%s comes from %v, want Secret %s", name, got, secret)
		}
	}
	if got := dig(env["BERTH_STORAGE_BLOBS"], "value"); got != "s3://registry?endpoint=https://s3.example.com&region=eu-west-1" {
		t.Errorf("BERTH_STORAGE_BLOBS = %v", got)
	}
	checkSecret(t, find(objs, "Secret"))
}

// checkPod checks what both modes' pods share: readiness on /readyz, the
// shared signing key mounted and named, a read-only root filesystem.
func checkPod(t *testing.T, pod map[string]any) {
	t.Helper()
	c := dig(pod, "spec", "containers").([]any)[0].(map[string]any)
	if dig(c, "readinessProbe", "httpGet", "path") != "/readyz" || dig(c, "livenessProbe", "httpGet", "path") != "/healthz" {
		t.Errorf("probes: readiness %v, liveness %v", dig(c, "readinessProbe", "httpGet", "path"), dig(c, "livenessProbe", "httpGet", "path"))
	}
	if dig(c, "securityContext", "readOnlyRootFilesystem") != true {
		t.Error("the root filesystem is writable")
	}
	found := false
	for _, e := range c["env"].([]any) {
		e := e.(map[string]any)
		if e["name"] == "BERTH_AUTH_SIGNING_KEY" && e["value"] == "/etc/berth/signing-key/signing-key.pem" {
			found = true
		}
	}
	if !found {
		t.Error("no BERTH_AUTH_SIGNING_KEY naming the mounted key")
	}
}

// checkSecret checks the generated secret: a password, and a signing key
// berth reads.
func checkSecret(t *testing.T, s map[string]any) {
	t.Helper()
	data := s["data"].(map[string]any)
	password, _ := base64.StdEncoding.DecodeString(data["admin-password"].(string))
	if len(password) < 24 {
		t.Errorf("generated admin password of %d bytes", len(password))
	}
	pem, err := base64.StdEncoding.DecodeString(data["signing-key.pem"].(string))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := token.LoadKey(path); err != nil {
		t.Errorf("berth refuses the generated signing key: %v", err)
	}
}

// Values a mode cannot run without fail the render with the reason.
func TestRefusesIncompleteValues(t *testing.T) {
	for _, tc := range []struct {
		values []string
		want   string
	}{
		{[]string{"--set", "mode=scaleout"}, "postgres.existingSecret"},
		{[]string{"--set", "mode=scaleout", "--set", "postgres.existingSecret=pg"}, "s3.url"},
		{[]string{"--set", "mode=scaleout", "--set", "postgres.existingSecret=pg", "--set", "s3.url=s3://b"}, "s3.existingSecret"},
		{[]string{"--set", "mode=cluster"}, "mode must be embedded or scaleout"},
	} {
		out, err := helm(t, append([]string{"template", "reg", chart}, tc.values...)...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("helm template %v: %v, want a refusal naming %q\n%s", tc.values, err, tc.want, out)
		}
	}
}

// Every object either mode renders is valid against Kubernetes' schemas
// (strict: no unknown field), with and without the optional parts; a
// misspelt field is caught, so the schemas are really used.
func TestKubeconform(t *testing.T) {
	kubeconform := testpeers.Tool(t, "kubeconform")
	location := kubeSchemas(t)
	validate := func(manifests string) (string, error) {
		cmd := exec.Command(kubeconform, "-strict", "-summary", "-kubernetes-version", kubernetesVersion,
			"-schema-location", location, "-")
		cmd.Stdin = strings.NewReader(manifests)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, values := range [][]string{
		nil,
		{"--set", "tls.existingSecret=berth-tls", "--set", "persistence.storageClass=fast", "--set", "extraEnv.BERTH_GC_INTERVAL=24h",
			"--set", "nodeSelector.disk=ssd", "--set", "podAnnotations.team=registry"},
		scaleOut,
		append(slices.Clone(scaleOut), "--set", "s3.redirect=true", "--set", "admin.existingSecret=admin", "--set", "signingKey.existingSecret=key",
			"--set", "masterKey.existingSecret=berth-master"),
	} {
		manifests, objs := render(t, values...)
		out, err := validate(manifests)
		if err != nil || !strings.Contains(out, "Invalid: 0, Errors: 0, Skipped: 0") {
			t.Errorf("kubeconform on %v: %v\n%s", values, err, out)
		}
		if !strings.Contains(out, "Valid: "+itoa(len(objs))) {
			t.Errorf("kubeconform validated fewer than the %d objects rendered: %s", len(objs), out)
		}
	}
	manifests, _ := render(t, scaleOut...)
	typo := strings.Replace(manifests, "  replicas: 2\n", "  replica: 2\n", 1)
	if typo == manifests {
		t.Fatal("no replicas field to misspell")
	}
	if out, err := validate(typo); err == nil {
		t.Errorf("kubeconform accepted a Deployment with a misspelt field:\n%s", out)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// Private webhook receivers stay refused unless the values allow them.
func TestWebhooksAllowPrivate(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"--set", "webhooks.allowPrivate=true"}, true},
	} {
		_, objs := render(t, c.args...)
		pod := dig(find(objs, "StatefulSet"), "spec", "template").(map[string]any)
		env := dig(pod, "spec", "containers").([]any)[0].(map[string]any)["env"].([]any)
		got := slices.ContainsFunc(env, func(e any) bool {
			m := e.(map[string]any)
			return m["name"] == "BERTH_WEBHOOKS_ALLOW_PRIVATE" && m["value"] == "true"
		})
		if got != c.want {
			t.Errorf("%v: BERTH_WEBHOOKS_ALLOW_PRIVATE=true set %v, want %v", c.args, got, c.want)
		}
	}
}

// Key custody: a master key Secret reaches berth as keys.master_key
// through the environment (berth refuses a group-readable key file, which
// a Secret volume under fsGroup is); without one, custody stays off.
func TestMasterKey(t *testing.T) {
	for _, c := range []struct {
		args []string
		kind string
		want bool
	}{
		{nil, "StatefulSet", false},
		{[]string{"--set", "masterKey.existingSecret=berth-master"}, "StatefulSet", true},
		{append(slices.Clone(scaleOut), "--set", "masterKey.existingSecret=berth-master"), "Deployment", true},
	} {
		_, objs := render(t, c.args...)
		pod := dig(find(objs, c.kind), "spec", "template").(map[string]any)
		env := dig(pod, "spec", "containers").([]any)[0].(map[string]any)["env"].([]any)
		var spec, secret string
		for _, e := range env {
			m := e.(map[string]any)
			switch m["name"] {
			case "BERTH_KEYS_MASTER_KEY":
				spec, _ = m["value"].(string)
			case "BERTH_MASTER":
				ref, _ := dig(m, "valueFrom", "secretKeyRef").(map[string]any)
				secret = fmt.Sprint(ref["name"], "/", ref["key"])
			}
		}
		if got := spec != "" || secret != ""; got != c.want {
			t.Errorf("%v: master key set %v (%q from %q), want %v", c.args, got, spec, secret, c.want)
		}
		if c.want && (spec != "env:BERTH_MASTER" || secret != "berth-master/master.key") {
			t.Errorf("%v: keys.master_key %q from %q, want env:BERTH_MASTER from berth-master/master.key", c.args, spec, secret)
		}
	}
}
