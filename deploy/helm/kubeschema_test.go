package helm_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// kubernetesVersion is the Kubernetes release whose API the chart is
// checked against: its OpenAPI documents come with the k8s.io/kubernetes
// module, through the Go module proxy (no other download).
const kubernetesVersion = "1.32.3"

// kubeSchemas writes kubeconform's standalone strict JSON schemas, one per
// kind, converted from the OpenAPI v3 documents Kubernetes publishes in
// api/openapi-spec/v3, and returns kubeconform's -schema-location for
// them.
func kubeSchemas(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", "k8s.io/kubernetes@v"+kubernetesVersion)
	cmd.Dir = t.TempDir() // outside the module: the download adds no requirement
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("download k8s.io/kubernetes@v%s: %v", kubernetesVersion, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
	files, err := filepath.Glob(filepath.Join(mod.Dir, "api", "openapi-spec", "v3", "*_openapi.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no OpenAPI documents in %s: %v", mod.Dir, err)
	}
	schemas := map[string]map[string]any{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Components struct {
				Schemas map[string]map[string]any `json:"schemas"`
			} `json:"components"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for name, s := range doc.Components.Schemas {
			schemas[name] = s
		}
	}
	dir := t.TempDir()
	written := 0
	for name, s := range schemas {
		gvks, _ := s["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			gvk, _ := g.(map[string]any)
			group, _ := gvk["group"].(string)
			version, _ := gvk["version"].(string)
			kind, _ := gvk["kind"].(string)
			// kubeconform's {{ .ResourceKind }}{{ .KindSuffix }}: the
			// kind, the group's first label, the version, lower case.
			file := strings.ToLower(kind)
			if group != "" {
				file += "-" + strings.ToLower(strings.Split(group, ".")[0])
			}
			file += "-" + strings.ToLower(version) + ".json"
			c := &converter{schemas: schemas, stack: map[string]bool{}}
			standalone := c.expand(map[string]any{"$ref": "#/components/schemas/" + name})
			raw, err := json.Marshal(standalone)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, file), raw, 0o644); err != nil {
				t.Fatal(err)
			}
			written++
		}
	}
	if written < 50 {
		t.Fatalf("only %d kinds in Kubernetes %s's OpenAPI documents", written, kubernetesVersion)
	}
	return dir + "/{{ .ResourceKind }}{{ .KindSuffix }}.json"
}

// converter turns an OpenAPI v3 schema into a standalone JSON schema:
// references inlined, Kubernetes' formats spelled as JSON schema types,
// and objects closed to properties they do not declare (kubeconform's
// strict mode: a misspelt field is an error, not ignored).
type converter struct {
	schemas map[string]map[string]any
	stack   map[string]bool
}

func (c *converter) expand(s map[string]any) map[string]any {
	out := map[string]any{}
	if ref, ok := s["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		if c.stack[name] {
			return map[string]any{} // recursive (JSONSchemaProps): anything
		}
		target, ok := c.schemas[name]
		if !ok {
			panic(fmt.Sprintf("unknown schema %s", name))
		}
		c.stack[name] = true
		out = c.expand(target)
		delete(c.stack, name)
		switch name {
		case "io.k8s.apimachinery.pkg.api.resource.Quantity":
			out = map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}
		case "io.k8s.apimachinery.pkg.util.intstr.IntOrString":
			out = map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
		}
	}
	for k, v := range s {
		switch k {
		case "$ref", "x-kubernetes-group-version-kind":
		case "allOf":
			// Kubernetes wraps a reference in allOf to give it a default
			// or a description: one schema, merged.
			if all, ok := v.([]any); ok && len(all) == 1 {
				if inner, ok := all[0].(map[string]any); ok {
					for ik, iv := range c.expand(inner) {
						out[ik] = iv
					}
					continue
				}
			}
			out[k] = c.expandAll(v)
		case "properties":
			props := map[string]any{}
			for pk, pv := range v.(map[string]any) {
				props[pk] = c.expand(pv.(map[string]any))
			}
			out[k] = props
		case "items", "additionalProperties":
			if m, ok := v.(map[string]any); ok {
				out[k] = c.expand(m)
			} else {
				out[k] = v
			}
		case "oneOf", "anyOf":
			out[k] = c.expandAll(v)
		case "format":
			if v == "int-or-string" {
				delete(out, "type")
				out["oneOf"] = []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}
				continue
			}
			out[k] = v
		default:
			if _, set := out[k]; !set || k == "description" || k == "default" {
				out[k] = v
			}
		}
	}
	if _, oneOf := out["oneOf"]; oneOf {
		if f, _ := s["format"].(string); f == "int-or-string" {
			delete(out, "type")
		}
	}
	if out["nullable"] == true {
		if t, ok := out["type"].(string); ok {
			out["type"] = []any{t, "null"}
		}
		delete(out, "nullable")
	}
	if _, has := out["properties"]; has && out["additionalProperties"] == nil && out["x-kubernetes-preserve-unknown-fields"] != true {
		out["additionalProperties"] = false
	}
	return out
}

func (c *converter) expandAll(v any) any {
	list, ok := v.([]any)
	if !ok {
		return v
	}
	out := make([]any, len(list))
	for i, e := range list {
		if m, ok := e.(map[string]any); ok {
			out[i] = c.expand(m)
		} else {
			out[i] = e
		}
	}
	return out
}
