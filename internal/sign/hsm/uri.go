// Package hsm reaches keys inside PKCS #11 tokens (hardware security
// modules, smart cards, SoftHSM) named by RFC 7512 URIs, as cosign names
// them: "pkcs11:token=berth;object=signing?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234".
// Private keys never leave the token: signing and the master key's
// encryption happen inside it.
package hsm

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// Scheme is the URI scheme of RFC 7512.
const Scheme = "pkcs11:"

// ModuleEnv names the PKCS #11 module when the URI has no module-path.
const ModuleEnv = "BERTH_PKCS11_MODULE"

var (
	// ErrBadURI means the reference is not a PKCS #11 URI berth can use.
	ErrBadURI = errors.New("bad pkcs11 URI")
	// ErrNoToken means no token matches the URI (absent, or unplugged).
	ErrNoToken = errors.New("no matching PKCS #11 token")
	// ErrLogin means the token refused the PIN, or none was given.
	ErrLogin = errors.New("PKCS #11 login failed")
	// ErrNoKey means the token has no key matching the URI's object or id.
	ErrNoKey = errors.New("no matching key in the PKCS #11 token")
	// ErrNoCgo means this berth was built without cgo, which PKCS #11
	// modules need.
	ErrNoCgo = errors.New("this berth was built without cgo and cannot load PKCS #11 modules")
)

// URI is a parsed RFC 7512 PKCS #11 URI, restricted to what selecting a
// token and a key needs.
type URI struct {
	// Token selection (any that is set must match).
	Token  string // token label
	Serial string
	Slot   *int
	// Key selection: label and/or CKA_ID.
	Object string
	ID     []byte
	// Module is the PKCS #11 library to load.
	Module string
	// PIN logs in; PINSource names a file holding it.
	PIN       string
	PINSource string
}

// IsURI reports whether ref is a PKCS #11 URI.
func IsURI(ref string) bool { return strings.HasPrefix(ref, Scheme) }

// ParseURI parses a PKCS #11 URI. Attributes are percent-decoded; an
// attribute berth does not know, or given twice, is an error rather than
// silently ignored: a misspelt "objet=" must not select another key.
func ParseURI(raw string) (URI, error) {
	rest, ok := strings.CutPrefix(raw, Scheme)
	if !ok {
		return URI{}, fmt.Errorf("%w: %q does not start with %q", ErrBadURI, redact(raw), Scheme)
	}
	path, query, _ := strings.Cut(rest, "?")
	var u URI
	seen := map[string]bool{}
	parse := func(part, sep string, set func(k, v string) error) error {
		if part == "" {
			return nil
		}
		for _, attr := range strings.Split(part, sep) {
			k, v, ok := strings.Cut(attr, "=")
			if !ok || k == "" {
				return fmt.Errorf("%w: attribute %q is not name=value", ErrBadURI, attr)
			}
			if seen[k] {
				return fmt.Errorf("%w: attribute %q given twice", ErrBadURI, k)
			}
			seen[k] = true
			dv, err := url.PathUnescape(v)
			if err != nil {
				return fmt.Errorf("%w: attribute %q: %v", ErrBadURI, k, err)
			}
			if err := set(k, dv); err != nil {
				return err
			}
		}
		return nil
	}
	err := parse(path, ";", func(k, v string) error {
		switch k {
		case "token":
			u.Token = v
		case "serial":
			u.Serial = v
		case "slot-id":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("%w: slot-id %q is not a number", ErrBadURI, v)
			}
			u.Slot = &n
		case "object":
			u.Object = v
		case "id":
			u.ID = []byte(v)
		case "type", "manufacturer", "model", "library-manufacturer", "library-description", "library-version":
			// Descriptive; the token and key are selected by the others.
		default:
			return fmt.Errorf("%w: unknown path attribute %q", ErrBadURI, k)
		}
		return nil
	})
	if err == nil {
		err = parse(query, "&", func(k, v string) error {
			switch k {
			case "module-path":
				u.Module = v
			case "module-name":
				// A bare name is resolved by the dynamic loader.
				if u.Module == "" {
					u.Module = v
				}
			case "pin-value":
				u.PIN = v
			case "pin-source":
				u.PINSource = strings.TrimPrefix(v, "file:")
			default:
				return fmt.Errorf("%w: unknown query attribute %q", ErrBadURI, k)
			}
			return nil
		})
	}
	if err != nil {
		return URI{}, err
	}
	if u.Token == "" && u.Serial == "" && u.Slot == nil {
		return URI{}, fmt.Errorf("%w: name the token (token=, serial= or slot-id=)", ErrBadURI)
	}
	if u.Module == "" {
		u.Module = os.Getenv(ModuleEnv)
	}
	if u.Module == "" {
		return URI{}, fmt.Errorf("%w: no PKCS #11 module: add ?module-path=… or set %s", ErrBadURI, ModuleEnv)
	}
	return u, nil
}

// pin returns the PIN to log in with.
func (u URI) pin() (string, error) {
	if u.PIN != "" {
		return u.PIN, nil
	}
	if u.PINSource != "" {
		b, err := os.ReadFile(u.PINSource)
		if err != nil {
			return "", fmt.Errorf("pin-source: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return "", nil
}

// HasKey reports whether the URI names a key (object= or id=).
func (u URI) HasKey() bool { return u.Object != "" || len(u.ID) > 0 }

// String names the token and key without the PIN.
func (u URI) String() string {
	var parts []string
	if u.Token != "" {
		parts = append(parts, "token="+u.Token)
	}
	if u.Serial != "" {
		parts = append(parts, "serial="+u.Serial)
	}
	if u.Slot != nil {
		parts = append(parts, "slot-id="+strconv.Itoa(*u.Slot))
	}
	if u.Object != "" {
		parts = append(parts, "object="+u.Object)
	}
	if len(u.ID) > 0 {
		parts = append(parts, "id="+url.PathEscape(string(u.ID)))
	}
	return Scheme + strings.Join(parts, ";")
}

// redact drops the query (which may hold a PIN) from a URI for messages.
func redact(raw string) string {
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		return raw[:i] + "?…"
	}
	return raw
}
