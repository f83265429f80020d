package secret

import (
	"regexp"
	"testing"
)

// TestRequiredLiterals: the prefilter never rejects a path its regexp
// matches, for every built-in path allow rule and some of our own.
func TestRequiredLiterals(t *testing.T) {
	rs := mustDefault(t)
	paths := []string{
		"app/node_modules/x/index.js", "usr/lib/python3.11/os.py", "x/Lib64/Python2.7/a", "img/LOGO.PNG",
		"a/go.sum", "vendor/modules.txt", "b/package-lock.json", "js/jquery-3.1.min.js", "Pipfile.lock",
		"usr/share/doc/x/copyright", "var/lib/dpkg/status", "etc/ssl/certs/ca.pem", "x/gitleaks.toml",
		"y/requests-2.0.dist-info/RECORD", "usr/lib/python3/dist-packages/foo/tests/k.pem", "app/.env", "x.GIF",
	}
	if len(rs.skipPaths) < 20 {
		t.Fatalf("%d path rules", len(rs.skipPaths))
	}
	for _, p := range rs.skipPaths {
		re := regexp.MustCompile(p.src)
		for _, path := range paths {
			if re.MatchString(path) && !p.mayMatch(toLower(path)) {
				t.Errorf("%s matches %q but the prefilter (%q) rejects it", p.src, path, p.need)
			}
		}
	}
	for _, tt := range []struct {
		src  string
		need []string
	}{
		{`(?i)\.(?:bmp|gif|jpe?g|png)$`, []string{"bmp", "gif", "jp", "png"}},
		{`(?:^|/)node_modules(?:/.*)?$`, []string{"node_modules"}},
		{`^usr/share/(?:doc|man)`, []string{"usr/share/"}},
		{`\.(?:a|b)?$`, []string{"."}},
	} {
		got := newPathRegexp(tt.src).need
		if len(got) != len(tt.need) {
			t.Errorf("%s: need %q, want %q", tt.src, got, tt.need)
			continue
		}
		for i := range got {
			if got[i] != tt.need[i] {
				t.Errorf("%s: need %q, want %q", tt.src, got, tt.need)
			}
		}
	}
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = lower(c)
	}
	return string(b)
}
