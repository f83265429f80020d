package rpm

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func fixture(t *testing.T) []byte { return gunzipFile(t, "testdata/rpmdb.sqlite.gz") }

func gunzipFile(t testing.TB, name string) []byte {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestAnalyzeSQLiteAndBerkeleyDB(t *testing.T) {
	for _, tt := range []struct{ fixture, path string }{
		{"testdata/rpmdb.sqlite.gz", "usr/lib/sysimage/rpm/rpmdb.sqlite"},
		{"testdata/Packages.bdb.gz", "var/lib/rpm/Packages"},
	} {
		t.Run(tt.path, func(t *testing.T) { checkDB(t, gunzipFile(t, tt.fixture), tt.path) })
	}
}

func checkDB(t *testing.T, db []byte, path string) {
	a := Analyzer{}
	for _, p := range []string{"var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/Packages", "var/lib/rpm/Packages.db"} {
		if !a.Required(p, nil) {
			t.Errorf("Required(%q) = false", p)
		}
	}
	if a.Required("var/lib/rpm/Packages.bak", nil) || a.Required("opt/var/lib/rpm/Packages", nil) {
		t.Error("Required accepts other files")
	}
	res, err := a.Analyze(context.Background(), fstest.MapFS{path: {Data: db}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sets) != 1 || res.Sets[0].Origin != path || len(res.Warns) != 0 {
		t.Fatalf("result %+v", res)
	}
	got := map[string]string{}
	for _, p := range res.Sets[0].Packages {
		got[p.Name] = strings.Join([]string{p.Version, p.SourceName, p.SourceVersion, p.Arch, strings.Join(p.Licenses, ","), p.Locations[0]}, " ")
	}
	loc := "/" + path
	want := map[string]string{
		"alpha":      "1.2.3-1.el9 alpha 1.2.3-1.el9 noarch MIT " + loc,
		"beta":       "2:4.5-1.el9 beta 2:4.5-1.el9 noarch MIT " + loc,
		"gamma":      "7.0-3.el9 gamma 7.0-3.el9 noarch GPL-2.0-or-later " + loc,
		"gamma-libs": "7.0-3.el9 gamma 7.0-3.el9 noarch LGPL-2.1-or-later " + loc,
		// An imported signing key: listed as rpm -qa lists it (the
		// matcher leaves it out).
		"gpg-pubkey": "123e6514-6b169b37 gpg-pubkey 123e6514-6b169b37  pubkey " + loc,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestCorruptDatabaseIsAWarning(t *testing.T) {
	db := fixture(t)
	for name, data := range map[string][]byte{
		"truncated sqlite": db[:len(db)/3],
		"garbage":          bytes.Repeat([]byte("not an rpm database "), 400),
	} {
		res, err := Analyzer{}.Analyze(context.Background(), fstest.MapFS{"var/lib/rpm/rpmdb.sqlite": {Data: data}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(res.Warns) != 1 || !strings.HasPrefix(res.Warns[0], "/var/lib/rpm/rpmdb.sqlite: ") {
			t.Errorf("%s: warnings %q", name, res.Warns)
		}
	}
}

func TestParseSourceRPM(t *testing.T) {
	tests := map[string][2]string{
		"openssl-3.0.7-27.el9.src.rpm":      {"openssl", "3.0.7-27.el9"},
		"python3.11-3.11.5-1.el9_3.src.rpm": {"python3.11", "3.11.5-1.el9_3"},
		"kernel-rt-5.14.0-1.nosrc.rpm":      {"kernel-rt", "5.14.0-1"},
	}
	for in, want := range tests {
		n, v, ok := parseSourceRPM(in)
		if !ok || n != want[0] || v != want[1] {
			t.Errorf("parseSourceRPM(%q) = %q %q %v", in, n, v, ok)
		}
	}
	if _, _, ok := parseSourceRPM("(none)"); ok {
		t.Error("(none) parsed")
	}
}

// A header that does not parse costs its package, not the database, and
// the reader go-rpmdb starts for every database finishes: before, the
// first bad header left that goroutine blocked for good, with the
// database file open, once per scan.
func TestDamagedHeaderKeepsTheRestAndLeaksNothing(t *testing.T) {
	db := sqliteWithHeader(t, setEntry(t, firstHeader(t), tagName, 2, 1<<30))
	before := runtime.NumGoroutine()
	for range 3 {
		res, err := Analyzer{}.Analyze(context.Background(), fstest.MapFS{"var/lib/rpm/rpmdb.sqlite": {Data: db}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Sets) != 1 || len(res.Sets[0].Packages) != 4 {
			t.Fatalf("sets %+v, want the 4 undamaged entries", res.Sets)
		}
		if len(res.Warns) != 1 || !strings.HasPrefix(res.Warns[0], "/var/lib/rpm/rpmdb.sqlite: entry 1: tag 1000") {
			t.Errorf("warnings %q", res.Warns)
		}
	}
	// Goroutines of finished calls may take a moment to exit; leaked ones
	// never do.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after reading, %d before", n, before)
	}
}
