package testpeers

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// SharedEnv names the shared fixtures folder when it is not ../shared
// beside the module (the layout the project's checkouts and CI have).
const SharedEnv = "BERTH_SHARED"

// Shared returns the absolute path of elem inside the shared test fixtures
// (images/…, vulndata/…), and fails the test when it is not there: the
// fixtures are part of every checkout and of CI, so a test that skipped
// without them would pass by testing nothing.
func Shared(tb testing.TB, elem ...string) string {
	tb.Helper()
	dir, err := sharedDir()
	if err != nil {
		tb.Fatalf("shared test fixtures: %v", err)
	}
	p := filepath.Join(append([]string{dir}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("shared test fixture missing: %v\n"+
			"The shared fixtures (images/, vulndata/, each with a README.md saying where its files come from) "+
			"belong in ../shared beside the berth checkout, as CI has them; "+
			"copy or link them there, or set %s to the folder holding them.", err, SharedEnv)
	}
	return p
}

// sharedDir is $BERTH_SHARED, else ../shared beside the module root (the
// closest folder above the working directory, a package's, holding go.mod).
func sharedDir() (string, error) {
	if dir := os.Getenv(SharedEnv); dir != "" {
		return filepath.Abs(dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(dir), "shared"), nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above %s: cannot tell where ../shared is; set %s", wd, SharedEnv)
		}
		dir = parent
	}
}
