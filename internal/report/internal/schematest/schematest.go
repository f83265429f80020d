// Package schematest validates encoder output against the official JSON
// schemas stored in internal/report/testdata/schemas, offline. Only tests
// import it.
package schematest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The $id each stored schema declares; $refs between them resolve against
// these, so registering every file under its $id keeps the compiler from
// ever trying to fetch one.
const (
	cycloneDXURL = "http://cyclonedx.org/schema/bom-1.6.schema.json"
	spdxURL      = "http://spdx.org/rdf/terms/2.3"
	sarifURL     = "https://raw.githubusercontent.com/oasis-tcs/sarif-spec/master/Schemata/sarif-schema-2.1.0.json"
)

// SchemaDir is the folder holding the stored schemas.
func SchemaDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "schemas")
}

// compile is done once per test binary: the CycloneDX schema is 250 kB and
// each encoder test validates many documents.
var compile = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for url, name := range map[string]string{
		cycloneDXURL: "bom-1.6.schema.json",
		"http://cyclonedx.org/schema/spdx.schema.json":     "spdx.schema.json",
		"http://cyclonedx.org/schema/jsf-0.82.schema.json": "jsf-0.82.schema.json",
		spdxURL:  "spdx-schema.json",
		sarifURL: "sarif-schema-2.1.0.json",
	} {
		raw, err := os.ReadFile(filepath.Join(SchemaDir(), name))
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if url == sarifURL {
			if err := repairSARIF(doc); err != nil {
				return nil, err
			}
		}
		if err := c.AddResource(url, doc); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, url := range []string{cycloneDXURL, spdxURL, sarifURL} {
		s, err := c.Compile(url)
		if err != nil {
			return nil, fmt.Errorf("compile %s: %w", url, err)
		}
		out[url] = s
	}
	return out, nil
})

// CycloneDX fails t unless doc is a valid CycloneDX 1.6 JSON document.
func CycloneDX(t testing.TB, doc []byte) {
	t.Helper()
	validate(t, cycloneDXURL, doc)
}

// SPDX fails t unless doc is a valid SPDX 2.3 JSON document.
func SPDX(t testing.TB, doc []byte) {
	t.Helper()
	validate(t, spdxURL, doc)
}

// SARIF fails t unless doc is a valid SARIF 2.1.0 log.
func SARIF(t testing.TB, doc []byte) {
	t.Helper()
	validate(t, sarifURL, doc)
}

// SARIFError returns the validation error instead of failing.
func SARIFError(doc []byte) error { return check(sarifURL, doc) }

// CycloneDXError and SPDXError return the validation error instead of
// failing, for tests that prove the validator rejects bad documents.
func CycloneDXError(doc []byte) error { return check(cycloneDXURL, doc) }

func SPDXError(doc []byte) error { return check(spdxURL, doc) }

func validate(t testing.TB, url string, doc []byte) {
	t.Helper()
	if err := check(url, doc); err != nil {
		t.Fatalf("document does not validate against %s:\n%v", url, err)
	}
}

func check(url string, doc []byte) error {
	schemas, err := compile()
	if err != nil {
		return fmt.Errorf("load schemas from %s: %w", SchemaDir(), err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return schemas[url].Validate(inst)
}

// repairSARIF fixes the one defect of the official SARIF 2.1.0 schema file:
// the region definition lists its "anyOf" (at least one of startLine,
// charOffset, byteOffset) among its properties, where it declares a
// property named anyOf and breaks the draft 2020-12 metaschema, so no
// conforming validator compiles the file. The stored file stays verbatim;
// the constraint is moved, in memory, to the region object where the
// specification (3.30.2) puts it.
func repairSARIF(doc any) error {
	root, _ := doc.(map[string]any)
	defs, _ := root["definitions"].(map[string]any)
	region, _ := defs["region"].(map[string]any)
	props, _ := region["properties"].(map[string]any)
	anyOf, ok := props["anyOf"].([]any)
	if !ok {
		return fmt.Errorf("sarif schema: region.properties.anyOf not where expected; remove repairSARIF if the file was fixed")
	}
	delete(props, "anyOf")
	region["anyOf"] = anyOf
	return nil
}
