// Package hsmtest gives tests a fresh SoftHSM2 token (Debian's softhsm2,
// installed by scripts/peers.sh): a token directory and configuration of
// its own, initialised with a known PIN, gone with the test.
package hsmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"berth.dev/berth/internal/testpeers"
)

// Module is where Debian installs SoftHSM2's PKCS #11 module.
const Module = "/usr/lib/softhsm/libsofthsm2.so"

// PIN and SOPIN are the new token's user and security officer PINs.
const (
	PIN   = "1234"
	SOPIN = "5678"
)

// Token is an initialised SoftHSM2 token.
type Token struct {
	Label string
	// Conf is the SoftHSM2 configuration file naming the token directory;
	// SOFTHSM2_CONF points at it for the rest of the test.
	Conf string
}

// URI returns a PKCS #11 URI for object in the token, with the module and
// PIN; extra path attributes (";id=…") may follow object.
func (tk Token) URI(object string) string {
	return fmt.Sprintf("pkcs11:token=%s;object=%s?module-path=%s&pin-value=%s", tk.Label, object, Module, PIN)
}

// New initialises a token labelled label in a directory of the test's,
// and points SOFTHSM2_CONF at it (so the test must not be parallel).
// Without SoftHSM2 the test is skipped, or fails when BERTH_REQUIRE_PEERS
// is set (as scripts/test.sh and CI set it).
func New(t testing.TB, label string) Token {
	t.Helper()
	util, err := exec.LookPath("softhsm2-util")
	if err == nil {
		_, err = os.Stat(Module)
	}
	if err != nil {
		testpeers.Missing(t, fmt.Sprintf("SoftHSM2 (%v)", err), "run scripts/peers.sh, which installs Debian's softhsm2")
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	cmd := exec.Command(util, "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SOPIN)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return Token{Label: label, Conf: conf}
}
