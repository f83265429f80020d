package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// The peers' outputs are read into what the comparison sees: berth's
// ecosystem names, Maven as group:artifact, locations relative to the
// placed root, the dev group kept. The documents are written here in the
// shapes syft's CycloneDX and osv-scanner's JSON take.
func TestPeerOutputs(t *testing.T) {
	tests := []struct {
		name string
		read func() ([]found, error)
		want []found
	}{{
		name: "syft CycloneDX",
		read: func() ([]found, error) {
			return syftPackages([]byte(`{"components": [
			  {"name": "@isaacs/string-locale-compare", "version": "1.1.0", "purl": "pkg:npm/%40isaacs/string-locale-compare@1.1.0",
			   "properties": [{"name": "syft:package:type", "value": "npm"}, {"name": "syft:location:0:path", "value": "/app/package-lock.json"}]},
			  {"name": "commons-text", "version": "1.10.0", "purl": "pkg:maven/org.apache.commons/commons-text@1.10.0",
			   "properties": [{"name": "syft:package:type", "value": "java-archive"}, {"name": "syft:location:0:path", "value": "/app/pom.xml"}]},
			  {"name": "bash", "version": "5.2.15-2+b2",
			   "properties": [{"name": "syft:package:type", "value": "deb"}, {"name": "syft:location:0:path", "value": "/var/lib/dpkg/status"},
			                  {"name": "syft:location:1:path", "value": "/usr/share/doc/bash/copyright"}]},
			  {"name": "my-app", "version": "UNKNOWN", "purl": "pkg:golang/my-app@UNKNOWN",
			   "properties": [{"name": "syft:package:type", "value": "go-module"}]},
			  {"name": "busybox", "version": "1.36.1", "properties": [{"name": "syft:package:type", "value": "binary"}]},
			  {"name": "/app", "type": "file"}
			]}`))
		},
		want: []found{
			{pkg{"npm", "@isaacs/string-locale-compare", "1.1.0"}, false, []string{"/app/package-lock.json"}},
			{pkg{"maven", "org.apache.commons:commons-text", "1.10.0"}, false, []string{"/app/pom.xml"}},
			{pkg{"deb", "bash", "5.2.15-2+b2"}, false, []string{"/var/lib/dpkg/status", "/usr/share/doc/bash/copyright"}},
			{pkg{"golang", "my-app", ""}, false, nil},
		},
	}, {
		name: "osv-scanner JSON",
		read: func() ([]found, error) {
			return osvPackages([]byte(`{"results": [
			  {"source": {"path": "/tmp/root/app/pnpm-lock.yaml", "type": "lockfile"}, "packages": [
			    {"package": {"name": "left-pad", "version": "1.3.0", "ecosystem": "npm"}},
			    {"package": {"name": "typescript", "version": "5.4.2", "ecosystem": "npm"}, "dependency_groups": ["dev"]}]},
			  {"source": {"path": "/tmp/root/usr/local/bin/prog", "type": "artifact"}, "packages": [
			    {"package": {"name": "stdlib", "version": "1.22.0", "ecosystem": "Go"}},
			    {"package": {"name": "musl", "version": "1.2.4", "ecosystem": "Alpine:v3.19"}},
			    {"package": {"name": "x", "version": "1", "ecosystem": "Hackage"}}]}
			]}`), "/tmp/root")
		},
		want: []found{
			{pkg{"npm", "left-pad", "1.3.0"}, false, []string{"/app/pnpm-lock.yaml"}},
			{pkg{"npm", "typescript", "5.4.2"}, true, []string{"/app/pnpm-lock.yaml"}},
			{pkg{"golang", "stdlib", "1.22.0"}, false, []string{"/usr/local/bin/prog"}},
			{pkg{"apk", "musl", "1.2.4"}, false, []string{"/usr/local/bin/prog"}},
		},
	}, {
		name: "osv-scanner found nothing",
		read: func() ([]found, error) { return osvPackages([]byte("\n"), "/tmp/root") },
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.read()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
	if _, err := syftPackages([]byte("not json")); err == nil {
		t.Error("syft: a document that is not JSON gave no error")
	}
}

// The agreed figure counts only packages on which the test and every tool
// that read the case agree; a tool that skips the case has no say.
func TestPrintAgreed(t *testing.T) {
	a, b, c, d := pkg{"npm", "a", "1"}, pkg{"npm", "b", "1"}, pkg{"npm", "c", "1"}, pkg{"npm", "d", "1"}
	set := func(ps ...pkg) map[pkg]bool {
		m := map[pkg]bool{}
		for _, p := range ps {
			m[p] = true
		}
		return m
	}
	lang := source{module: "trivy", eco: "npm"}
	os := source{module: "rpmdb", eco: "rpm"}
	// osv-scanner v1's one source names each case's ecosystem.
	osv := source{module: "osvscanner"}
	skipOS := func(s source, c testCase) string {
		if c.ecosystem(s) == "rpm" {
			return "reads no rpm database"
		}
		return ""
	}
	tools := []peerTool{{name: "one", skip: func(source, testCase) string { return "" }}, {name: "two", skip: skipOS}}
	jobs := []peerJob{
		// a: expected, both found, berth found. b: expected, one tool
		// missed it (differ). c: not expected, nobody lists it, berth
		// does (a phantom nobody lists). d: not expected, tool one lists
		// it too (differ).
		{src: lang, berth: outcome{want: set(a, b), got: set(a, c, d)}},
		// Only tool one votes: a expected and found by it, berth missed.
		{src: os, berth: outcome{want: set(a), got: set()}},
		// The same, the case's own ecosystem skipping tool two: berth
		// found a.
		{src: osv, c: testCase{Eco: "rpm"}, berth: outcome{want: set(a), got: set(a)}},
	}
	gots := [][]map[pkg]bool{{set(a, b, d), set(a), set(a)}, {set(a), nil, nil}}
	var out bytes.Buffer
	printAgreed(&out, tools, jobs, gots)
	for _, want := range []string{
		"trivy  1  1  1.0000  1  0.5000  2",
		"rpmdb  1  0  0.0000  0  -  0",
		"osvscanner  1  1  1.0000  0  1.0000  0",
		"all  3  2  0.6667  1  0.6667  2",
	} {
		if !strings.Contains(strings.Join(strings.Fields(out.String()), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("no row %q in\n%s", want, out.String())
		}
	}
}
