package misconfig

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

const goodPod = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
      containers:
        - name: web
          image: registry.example.com/web:1.4.2@sha256:0000000000000000000000000000000000000000000000000000000000000000
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
              add: [NET_BIND_SERVICE]
`

func lintK8s(t *testing.T, src string) []string {
	t.Helper()
	fs, err := LintKubernetes("deploy.yaml", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s:%d", f.ID, f.Line))
	}
	slices.Sort(out)
	return out
}

func TestKubernetesRules(t *testing.T) {
	if got := lintK8s(t, goodPod); len(got) != 0 {
		t.Fatalf("good pod: %v", got)
	}
	for _, tt := range []struct {
		name, from, to string
		want           []string
	}{
		{"privileged", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: false\n            privileged: true", []string{"BK001:16"}},
		{"root user", "runAsUser: 10001", "runAsUser: 0", []string{"BK002:10"}},
		{"no runAsNonRoot", "runAsNonRoot: true", "fsGroup: 2000", []string{"BK002:12"}},
		{"escalation", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", []string{"BK003:15"}},
		{"writable root", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", []string{"BK004:16"}},
		{"caps", "drop: [ALL]", "drop: [NET_RAW]", []string{"BK005:18"}},
		{"sys_admin", "add: [NET_BIND_SERVICE]", "add: [SYS_ADMIN]", []string{"BK005:19"}},
		{"host network", "      securityContext:\n        runAsNonRoot", "      hostNetwork: true\n      securityContext:\n        runAsNonRoot", []string{"BK006:8"}},
		{"host path", "      containers:", "      volumes:\n        - name: docker\n          hostPath: {path: /var/run/docker.sock}\n      containers:", []string{"BK007:13"}},
		{"latest image", "registry.example.com/web:1.4.2@sha256:" + strings.Repeat("0", 64), "nginx:latest", []string{"BK008:13"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(goodPod, tt.from, tt.to, 1)
			if src == goodPod {
				t.Fatalf("%q not found", tt.from)
			}
			if got := lintK8s(t, src); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v\n%s", got, tt.want, src)
			}
		})
	}
	// Several documents; other kinds and empty documents are skipped; a
	// CronJob's pod spec is found where it lives.
	multi := "kind: ConfigMap\ndata: {a: b}\n---\n---\nkind: CronJob\nmetadata: {name: nightly}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n            - name: job\n              image: busybox\n"
	got := lintK8s(t, multi)
	if want := []string{"BK002:13", "BK003:13", "BK004:13", "BK005:13", "BK008:14"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("cronjob: %v, want %v", got, want)
	}
	if _, err := LintKubernetes("x.yaml", strings.NewReader("kind: Pod\nspec: [\n")); err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), "line") {
		t.Errorf("bad YAML: %v", err)
	}
}

func FuzzLintKubernetes(f *testing.F) {
	f.Add(goodPod)
	f.Add("kind: Pod\nspec: {containers: [{name: a, securityContext: {capabilities: {add: [ALL]}}}]}\n")
	f.Fuzz(func(t *testing.T, src string) {
		LintKubernetes("x.yaml", strings.NewReader(src))
	})
}
