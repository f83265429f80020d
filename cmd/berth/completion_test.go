package main

import (
	"slices"
	"strings"
	"testing"
)

// TestCompletion asks berth's completion for flag values as a shell does
// (`berth __complete ARGS… PARTIAL`) and for the scripts themselves.
func TestCompletion(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"scan", "--format", ""}, []string{"table", "json", "sarif", "cyclonedx"}},
		{[]string{"scan", "-f", ""}, []string{"sarif"}},
		{[]string{"sbom", "--format", ""}, []string{"cyclonedx", "spdx"}},
		{[]string{"scan", "--severity", ""}, []string{"CRITICAL", "HIGH+"}},
		{[]string{"scan", "--severity", "HIGH,"}, []string{"HIGH,CRITICAL", "HIGH,UNKNOWN"}},
		{[]string{"admin", "member", "add", "team-a", "alice", "--role", ""}, []string{"projectAdmin", "limitedGuest"}},
		{[]string{"attest", "--type", ""}, []string{"slsaprovenance", "cyclonedx", "vuln"}},
		{[]string{"--log-format", ""}, []string{"text", "json"}},
		{[]string{"db", "status", "--format", ""}, []string{"text", "json"}},
		{[]string{"sign", "--key", ""}, []string{"key"}},
		{[]string{"verify", "--key", ""}, []string{"pub"}},
	}
	for _, tc := range tests {
		out, err := runCmd(t, newRootCmd(), append([]string{"__complete"}, tc.args...)...)
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		got := strings.Split(out, "\n")
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("berth %s: %q not offered:\n%s", strings.Join(tc.args, " "), w, out)
			}
		}
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if out, err := runCmd(t, newRootCmd(), "completion", shell); err != nil || !strings.Contains(out, "berth") {
			t.Errorf("completion %s = %v (%d bytes)", shell, err, len(out))
		}
	}
}
