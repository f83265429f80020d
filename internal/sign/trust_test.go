package sign

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/sign/keys"
)

func TestKeyValidityWindow(t *testing.T) {
	ctx := context.Background()
	reg := newTestRegistry(t, true)
	img := reg.image(t, "team/app", "v1", "window")
	old := newTestKey(t, "old")
	if _, err := Sign(ctx, reg.store, img, old.key, SignOptions{}); err != nil {
		t.Fatal(err)
	}
	cutover := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	windowed, err := NewTrustedKey("old", old.key.Public(), time.Time{}, cutover)
	if err != nil {
		t.Fatal(err)
	}
	trust := Trust{Keys: []TrustedKey{windowed}, Require: 1}
	if _, err := Verify(ctx, reg.store, img, trust, VerifyOptions{Now: cutover.Add(-time.Hour)}); err != nil {
		t.Fatalf("inside the window: %v", err)
	}
	_, err = Verify(ctx, reg.store, img, trust, VerifyOptions{Now: cutover.Add(time.Hour)})
	if !errors.Is(err, ErrKeyNotValid) {
		t.Fatalf("after not-after: err = %v", err)
	}
	future, err := NewTrustedKey("old", old.key.Public(), cutover, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Verify(ctx, reg.store, img, Trust{Keys: []TrustedKey{future}, Require: 1}, VerifyOptions{Now: cutover.Add(-time.Hour)})
	if !errors.Is(err, ErrKeyNotValid) {
		t.Fatalf("before not-before: err = %v", err)
	}
	if _, err := NewTrustedKey("x", old.key.Public(), cutover, cutover); !errors.Is(err, ErrBadTrust) {
		t.Fatalf("empty window: err = %v", err)
	}
}

func TestLoadTrustFile(t *testing.T) {
	dir := t.TempDir()
	a, b := newTestKey(t, "a"), newTestKey(t, "b")
	aPEM, err := keys.EncodePublic(a.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	bPEM, err := keys.EncodePublic(b.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "old.pub"), aPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	inline := "    key: |\n" + indent(string(bPEM), "      ")
	good := "keys:\n" +
		"  - name: release-2024\n    path: old.pub\n    not-after: 2025-01-31T00:00:00Z\n" +
		"  - name: release-2025\n" + inline + "    not-before: 2025-01-01\n"
	tf := write(t, dir, "trust.yaml", good)
	trust, err := LoadTrustFile(tf)
	if err != nil {
		t.Fatal(err)
	}
	if trust.Require != 1 || len(trust.Keys) != 2 {
		t.Fatalf("trust %+v", trust)
	}
	if trust.Keys[0].Name != "release-2024" || trust.Keys[0].ID() != a.key.ID() ||
		!trust.Keys[0].NotAfter.Equal(time.Date(2025, 1, 31, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("first key %+v", trust.Keys[0])
	}
	if trust.Keys[1].ID() != b.key.ID() || !trust.Keys[1].NotBefore.Equal(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("second key %+v", trust.Keys[1])
	}

	bad := map[string]string{
		"unknown field":     "keys:\n  - name: x\n    path: old.pub\n    expires: 2025-01-01\n",
		"both key and path": "keys:\n  - path: old.pub\n" + inline,
		"neither":           "keys:\n  - name: x\n",
		"missing file":      "keys:\n  - path: nope.pub\n",
		"not a key":         "keys:\n  - key: hello\n",
		"duplicate key":     "keys:\n  - path: old.pub\n  - path: old.pub\n",
		"require too many":  "require: 2\nkeys:\n  - path: old.pub\n",
		"no keys":           "keys: []\n",
		"bad date":          "keys:\n  - path: old.pub\n    not-after: someday\n",
		"inverted window":   "keys:\n  - path: old.pub\n    not-before: 2025-02-01\n    not-after: 2025-01-01\n",
		"not YAML":          "keys: [\n",
	}
	for name, doc := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := LoadTrustFile(write(t, dir, "bad.yaml", doc))
			if !errors.Is(err, ErrBadTrust) {
				t.Fatalf("err = %v, want ErrBadTrust", err)
			}
		})
	}
	if _, err := LoadTrustFile(filepath.Join(dir, "absent.yaml")); err == nil {
		t.Fatal("absent trust file accepted")
	}
}

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "") + "\n"
}
