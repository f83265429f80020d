package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolveVersion(t *testing.T) {
	tests := []struct {
		set, stamped, want string
	}{
		{"v1.2.3", "v0.0.0-20260101000000-abcdef123456", "v1.2.3"}, // a release build's -X wins
		{"dev", "v1.4.0", "v1.4.0"},                                // go install berth.dev/berth/cmd/berth@v1.4.0
		{"dev", "v0.0.0-20260101000000-abcdef123456+dirty", "v0.0.0-20260101000000-abcdef123456+dirty"},
		{"dev", "(devel)", "dev"},
		{"dev", "", "dev"},
	}
	for _, tc := range tests {
		bi := &debug.BuildInfo{Main: debug.Module{Version: tc.stamped}}
		if got := resolveVersion(tc.set, bi); got != tc.want {
			t.Errorf("resolveVersion(%q, %q) = %q, want %q", tc.set, tc.stamped, got, tc.want)
		}
	}
	if got := resolveVersion("dev", nil); got != "dev" {
		t.Errorf("without build info: %q", got)
	}
}

func TestVersionText(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2026-08-01T10:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	got := versionText("v1.2.3", "", bi)
	for _, want := range []string{"berth v1.2.3\n", "commit: 0123456789abcdef0123456789abcdef01234567 (2026-08-01T10:00:00Z), with uncommitted changes\n", "go:     go1.26.8 "} {
		if !strings.Contains(got, want) {
			t.Errorf("version text lacks %q:\n%s", want, got)
		}
	}
	// A build with no VCS stamp (a git worktree, a source tarball) shows
	// the commit the release build set.
	got = versionText("v1.2.3", "fedcba9876543210", &debug.BuildInfo{GoVersion: "go1.26.8"})
	if !strings.Contains(got, "commit: fedcba9876543210\n") {
		t.Errorf("set commit not shown:\n%s", got)
	}
	out, err := runCmd(t, newRootCmd(), "--version")
	if err != nil || !strings.HasPrefix(out, "berth ") || !strings.Contains(out, "go:     go1.") {
		t.Errorf("berth --version = %v\n%s", err, out)
	}
	out2, err := runCmd(t, newRootCmd(), "version")
	if err != nil || out2 != out {
		t.Errorf("berth version = %v\n%s\nwant what --version prints:\n%s", err, out2, out)
	}
}
