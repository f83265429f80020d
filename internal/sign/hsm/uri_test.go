package hsm

import (
	"errors"
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	t.Setenv(ModuleEnv, "")
	good := []struct {
		in   string
		want URI
	}{
		{"pkcs11:token=berth;object=sign?module-path=/lib/p11.so&pin-value=1234",
			URI{Token: "berth", Object: "sign", Module: "/lib/p11.so", PIN: "1234"}},
		{"pkcs11:token=my%20token;object=a%3Bb;id=%01%02?module-path=/m.so",
			URI{Token: "my token", Object: "a;b", ID: []byte{1, 2}, Module: "/m.so"}},
		{"pkcs11:slot-id=3;type=private;object=k?module-name=libsofthsm2.so&pin-source=file:/run/pin",
			URI{Slot: ptr(3), Object: "k", Module: "libsofthsm2.so", PINSource: "/run/pin"}},
	}
	for _, tc := range good {
		got, err := ParseURI(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got.Token != tc.want.Token || got.Object != tc.want.Object || string(got.ID) != string(tc.want.ID) ||
			got.Module != tc.want.Module || got.PIN != tc.want.PIN || got.PINSource != tc.want.PINSource ||
			(got.Slot == nil) != (tc.want.Slot == nil) || (got.Slot != nil && *got.Slot != *tc.want.Slot) {
			t.Errorf("%s: got %+v, want %+v", tc.in, got, tc.want)
		}
		if strings.Contains(got.String(), "1234") {
			t.Errorf("String() shows the PIN: %s", got)
		}
	}
	bad := []struct{ in, want string }{
		{"pkcs12:token=a?module-path=/m.so", "does not start"},
		{"pkcs11:object=a?module-path=/m.so", "name the token"},
		{"pkcs11:token=a;objet=b?module-path=/m.so", `unknown path attribute "objet"`},
		{"pkcs11:token=a;token=b?module-path=/m.so", "given twice"},
		{"pkcs11:token=a?module-path=/m.so&pin=1", `unknown query attribute "pin"`},
		{"pkcs11:token=a;slot-id=x?module-path=/m.so", "slot-id"},
		{"pkcs11:token=a;object=%zz?module-path=/m.so", "object"},
		{"pkcs11:token=a;object=b", "no PKCS #11 module"},
		{"pkcs11:token=a;garbage?module-path=/m.so", "not name=value"},
	}
	for _, tc := range bad {
		_, err := ParseURI(tc.in)
		if !errors.Is(err, ErrBadURI) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want ErrBadURI mentioning %q", tc.in, err, tc.want)
		}
	}
	// The module may come from the environment.
	t.Setenv(ModuleEnv, "/env/p11.so")
	if u, err := ParseURI("pkcs11:token=a;object=b"); err != nil || u.Module != "/env/p11.so" {
		t.Errorf("module from %s: %+v, %v", ModuleEnv, u, err)
	}
}

func ptr(n int) *int { return &n }
