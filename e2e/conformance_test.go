package e2e

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/testpeers"
)

// junitReport is the part of the conformance suite's junit.xml we read.
type junitReport struct {
	Suites []struct {
		Tests     int `xml:"tests,attr"`
		Testcases []struct {
			Name      string    `xml:"name,attr"`
			Classname string    `xml:"classname,attr"`
			Skipped   *struct{} `xml:"skipped"`
			Failure   *struct {
				Message string `xml:"message,attr"`
				Data    string `xml:",cdata"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
				Data    string `xml:",cdata"`
			} `xml:"error"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// TestConformance runs the OCI distribution-spec conformance suite with every
// workflow and every optional feature enabled against a fresh berth.
func TestConformance(t *testing.T) {
	suite := testpeers.Tool(t, "oci-conformance")
	runConformance(t, suite, startBerth(t))
}

// TestConformanceWithAuth runs the same suite against berth with auth on,
// as the administrator: token auth through /token, every request
// authorized.
func TestConformanceWithAuth(t *testing.T) {
	suite := testpeers.Tool(t, "oci-conformance")
	s := startBerthAuth(t)
	runConformance(t, suite, s, "OCI_USERNAME=admin", "OCI_PASSWORD="+s.Password)
}

func runConformance(t *testing.T, suite string, s *server, extraEnv ...string) {
	t.Helper()
	results := t.TempDir()
	env := []string{
		"OCI_REGISTRY=" + s.Addr,
		"OCI_TLS=disabled",
		"OCI_VERSION=1.1",
		"OCI_REPO1=conformance/repo1",
		"OCI_REPO2=conformance/repo2",
		"OCI_RESULTS_DIR=" + results,
		"OCI_API_PULL=true",
		"OCI_API_PUSH=true",
		"OCI_API_BLOBS_ATOMIC=true",
		"OCI_API_BLOBS_DELETE=true",
		"OCI_API_BLOBS_DIGEST_HEADER=true",
		"OCI_API_BLOBS_MOUNT_ANONYMOUS=true",
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
		"OCI_API_MANIFESTS_ATOMIC=true",
		"OCI_API_MANIFESTS_DELETE=true",
		"OCI_API_MANIFESTS_DIGEST_HEADER=true",
		"OCI_API_MANIFESTS_TAG_PARAM=true",
		"OCI_API_TAGS_ATOMIC=true",
		"OCI_API_TAGS_DELETE=true",
		"OCI_API_TAGS_LIST=true",
		"OCI_API_REFERRER=true",
		"OCI_DATA_IMAGE=true",
		"OCI_DATA_INDEX=true",
		"OCI_DATA_INDEX_LIST=true",
		"OCI_DATA_SPARSE=true",
		"OCI_DATA_ARTIFACT=true",
		"OCI_DATA_SUBJECT=true",
		"OCI_DATA_SUBJECT_MISSING=true",
		"OCI_DATA_ARTIFACT_LIST=true",
		"OCI_DATA_SUBJECT_LIST=true",
		"OCI_DATA_DATA_FIELD=true",
		"OCI_DATA_NONDISTRIBUTABLE=true",
		"OCI_DATA_CUSTOM_FIELDS=true",
		"OCI_DATA_NO_LAYERS=true",
		"OCI_DATA_EMPTY_BLOB=true",
		"OCI_DATA_SHA512=true",
	}
	out := run(t, append(env, extraEnv...), suite)
	raw, err := os.ReadFile(filepath.Join(results, "junit.xml"))
	if err != nil {
		t.Fatalf("conformance suite wrote no junit.xml: %v\n%s", err, out)
	}
	var rep junitReport
	if err := xml.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("parse junit.xml: %v", err)
	}
	total, skipped := 0, 0
	var failed []string
	for _, suite := range rep.Suites {
		for _, tc := range suite.Testcases {
			total++
			switch {
			case tc.Failure != nil:
				failed = append(failed, tc.Classname+" / "+tc.Name+": "+tc.Failure.Message+"\n"+tc.Failure.Data)
			case tc.Error != nil:
				failed = append(failed, tc.Classname+" / "+tc.Name+": "+tc.Error.Message+"\n"+tc.Error.Data)
			case tc.Skipped != nil:
				skipped++
			}
		}
	}
	t.Logf("conformance: %d test cases, %d failed, %d skipped", total, len(failed), skipped)
	if total < 800 {
		t.Errorf("only %d test cases ran; want the full suite (830 junit cases with every switch on)\n%s", total, out)
	}
	if len(failed) > 0 {
		t.Errorf("%d conformance failures:\n%s", len(failed), strings.Join(failed, "\n---\n"))
	}
	if skipped > 0 {
		t.Errorf("%d conformance tests skipped: every optional feature is enabled, so a skip means berth reported a feature unsupported\n%s", skipped, out)
	}
}
