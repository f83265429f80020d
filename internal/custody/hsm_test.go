//go:build cgo

package custody

import (
	"context"
	"errors"
	"strings"
	"testing"

	"berth.dev/berth/internal/sign/hsm"
	"berth.dev/berth/internal/sign/hsm/hsmtest"
)

// TestSoftHSMMasterKey keeps the master key in SoftHSM2: keys stored under
// it open again after a restart; a token without the key, or a wrong PIN,
// stops the server from starting with its own message.
func TestSoftHSMMasterKey(t *testing.T) {
	tk := hsmtest.New(t, "berth-master")
	uri := tk.URI("master")
	u, _ := hsm.ParseURI(uri)
	tok, err := hsm.Open(u)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.GenerateSecret(u); err != nil {
		t.Fatal(err)
	}
	tok.Close()
	ctx := context.Background()
	dir := t.TempDir()
	open := func() (*Service, Master) {
		m, err := OpenMaster(uri)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(ctx, Options{Store: openSQLite(t, dir), Master: m})
		if err != nil {
			t.Fatal(err)
		}
		return s, m
	}
	s, m := open()
	k, err := s.Create(ctx, NewKey{ProjectID: "p", Project: "team", Purpose: "scan"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	m.Close()
	s, m = open()
	if got := signs(t, s, "p", "scan"); got != k.ID {
		t.Errorf("after a restart %s signs, want %s", got, k.ID)
	}
	s.Close()
	m.Close()

	for spec, want := range map[string]error{
		tk.URI("absent"): hsm.ErrNoKey,
		strings.Replace(uri, "pin-value=1234", "pin-value=4321", 1): hsm.ErrLogin,
	} {
		_, err := OpenMaster(spec)
		if !errors.Is(err, ErrMasterKey) || !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", spec, err, want)
		}
	}
}
