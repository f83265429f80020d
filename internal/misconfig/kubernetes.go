package misconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"
)

// Kubernetes pod specs: the securityContext rules that decide what a
// container may do to its node. CheckPodSpec is written against
// yaml.Node so that any caller holding a manifest (berth lint, an
// admission check) gets findings with lines.

// podSpecPath says where a kind keeps its pod spec.
var podSpecPath = map[string][]string{
	"Pod":                   {"spec"},
	"Deployment":            {"spec", "template", "spec"},
	"StatefulSet":           {"spec", "template", "spec"},
	"DaemonSet":             {"spec", "template", "spec"},
	"ReplicaSet":            {"spec", "template", "spec"},
	"ReplicationController": {"spec", "template", "spec"},
	"Job":                   {"spec", "template", "spec"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template", "spec"},
}

// LintKubernetes checks the pod specs of every document of a YAML
// manifest. Documents of other kinds are skipped; a file that is not
// YAML is an error naming the line.
func LintKubernetes(name string, r io.Reader) ([]Finding, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxDockerfile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > maxDockerfile {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxDockerfile)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []Finding
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s: %w: %v", name, ErrSyntax, err)
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		kind := scalar(get(root, "kind"))
		path, ok := podSpecPath[kind]
		if !ok {
			continue
		}
		spec := get(root, path...)
		if spec == nil {
			continue
		}
		for _, f := range CheckPodSpec(spec) {
			f.Target = name
			if obj := scalar(get(root, "metadata", "name")); obj != "" {
				f.Evidence = kind + "/" + obj + ": " + f.Evidence
			}
			out = append(out, f)
		}
	}
}

// CheckPodSpec applies the BK rules to a pod spec (a mapping node).
func CheckPodSpec(spec *yaml.Node) []Finding {
	var out []Finding
	add := func(id string, n *yaml.Node, ev string) {
		f := finding(id, "", ev)
		if n != nil {
			f.Line, f.EndLine = n.Line, n.Line
		}
		out = append(out, f)
	}
	for _, k := range []string{"hostNetwork", "hostPID", "hostIPC"} {
		if n := get(spec, k); scalar(n) == "true" {
			add("BK006", n, k+": true")
		}
	}
	if vols := get(spec, "volumes"); vols != nil && vols.Kind == yaml.SequenceNode {
		for _, v := range vols.Content {
			if hp := get(v, "hostPath"); hp != nil {
				add("BK007", hp, "volume "+scalar(get(v, "name"))+" mounts hostPath "+scalar(get(hp, "path")))
			}
		}
	}
	podSC := get(spec, "securityContext")
	for _, list := range []string{"initContainers", "containers", "ephemeralContainers"} {
		cs := get(spec, list)
		if cs == nil || cs.Kind != yaml.SequenceNode {
			continue
		}
		for _, c := range cs.Content {
			out = append(out, checkContainer(c, podSC)...)
		}
	}
	return out
}

func checkContainer(c, podSC *yaml.Node) []Finding {
	var out []Finding
	name := scalar(get(c, "name"))
	add := func(id string, n *yaml.Node, ev string) {
		f := finding(id, "", "container "+name+": "+ev)
		if n == nil {
			n = c
		}
		f.Line, f.EndLine = n.Line, n.Line
		out = append(out, f)
	}
	sc := get(c, "securityContext")
	// A container's setting wins over the pod's.
	setting := func(k string) (*yaml.Node, string) {
		if n := get(sc, k); n != nil {
			return n, scalar(n)
		}
		if n := get(podSC, k); n != nil {
			return n, scalar(n)
		}
		return nil, ""
	}
	if n := get(sc, "privileged"); scalar(n) == "true" {
		add("BK001", n, "privileged: true")
	}
	nonRoot, v := setting("runAsNonRoot")
	user, uid := setting("runAsUser")
	switch {
	case user != nil && uid == "0":
		add("BK002", user, "runAsUser: 0")
	case nonRoot == nil || v != "true":
		add("BK002", nonRoot, "runAsNonRoot is not true")
	}
	if n := get(sc, "allowPrivilegeEscalation"); scalar(n) != "false" {
		add("BK003", n, "allowPrivilegeEscalation is not false")
	}
	if n := get(sc, "readOnlyRootFilesystem"); scalar(n) != "true" {
		add("BK004", n, "readOnlyRootFilesystem is not true")
	}
	caps := get(sc, "capabilities")
	dropsAll := false
	if d := get(caps, "drop"); d != nil {
		for _, x := range d.Content {
			dropsAll = dropsAll || strings.EqualFold(scalar(x), "ALL")
		}
	}
	if !dropsAll {
		add("BK005", caps, "capabilities.drop does not include ALL")
	}
	if a := get(caps, "add"); a != nil {
		for _, x := range a.Content {
			switch strings.ToUpper(strings.TrimPrefix(strings.ToUpper(scalar(x)), "CAP_")) {
			case "SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SYS_MODULE", "ALL":
				add("BK005", x, "capabilities.add: "+scalar(x))
			}
		}
	}
	if img := get(c, "image"); img != nil && !pinnedRef(scalar(img)) {
		add("BK008", img, "image "+scalar(img))
	}
	return out
}

// get walks mapping keys; nil when a key is missing or n is not a mapping.
func get(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
				break
			}
		}
		n = next
	}
	return n
}

func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}
