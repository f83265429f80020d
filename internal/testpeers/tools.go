package testpeers

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Environment variables of the peer tools: where scripts/peers.sh installs
// them, and whether a missing one fails the test (scripts/test.sh sets it).
const (
	PeersEnv        = "BERTH_PEERS"
	RequirePeersEnv = "BERTH_REQUIRE_PEERS"
)

// Missing ends the test because a peer it needs, a tool or a service, is
// absent: the test fails when BERTH_REQUIRE_PEERS is set, as in CI, so a run
// without its peers cannot pass by testing nothing; otherwise it is skipped.
// install says how to get the peer (e.g. "run scripts/peers.sh").
func Missing(tb testing.TB, what, install string) {
	tb.Helper()
	if os.Getenv(RequirePeersEnv) != "" {
		tb.Fatalf("%s is missing (%s is set, so this fails): %s", what, RequirePeersEnv, install)
	}
	tb.Skipf("%s is missing: %s (with %s=1, as in CI, this fails instead of skipping)", what, install, RequirePeersEnv)
}

// Tool returns the path of the peer tool name: in $BERTH_PEERS (default
// ~/.cache/berth-peers, where scripts/peers.sh installs), else on PATH.
// Without it the test ends as Missing says.
func Tool(tb testing.TB, name string) string {
	tb.Helper()
	dir := os.Getenv(PeersEnv)
	if dir == "" {
		if home, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(home, ".cache", "berth-peers")
		}
	}
	if dir != "" {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	Missing(tb, "peer tool "+name+" (looked in $"+PeersEnv+" and on PATH)", "run scripts/peers.sh, which installs it into $"+PeersEnv)
	return ""
}
