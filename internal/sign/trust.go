package sign

import (
	"bytes"
	"crypto"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"gopkg.in/yaml.v3"

	"berth.dev/berth/internal/sign/keys"
)

// TrustedKey is a public key a verifier accepts, optionally only within a
// validity window. The window is checked against the time of verification:
// signatures carry no trusted timestamp when made offline, so a signature's
// own claim of when it was made cannot be believed. Where the registry that
// received a signature says when it arrived (VerifyOptions.ArrivedAt), the
// window is also checked at that time.
type TrustedKey struct {
	// Name labels the key in messages (a file name or a trust-file name).
	Name      string
	NotBefore time.Time // zero: no lower bound
	NotAfter  time.Time // zero: no upper bound

	pub      crypto.PublicKey
	id       string
	verifier signature.Verifier
}

// NewTrustedKey prepares pub for verification.
func NewTrustedKey(name string, pub crypto.PublicKey, notBefore, notAfter time.Time) (TrustedKey, error) {
	if !notBefore.IsZero() && !notAfter.IsZero() && !notAfter.After(notBefore) {
		return TrustedKey{}, fmt.Errorf("%w: key %s: not-after %s is not after not-before %s", ErrBadTrust, name, notAfter.Format(time.RFC3339), notBefore.Format(time.RFC3339))
	}
	v, err := keys.Verifier(pub)
	if err != nil {
		return TrustedKey{}, fmt.Errorf("key %s: %w", name, err)
	}
	id, err := keys.ID(pub)
	if err != nil {
		return TrustedKey{}, fmt.Errorf("key %s: %w", name, err)
	}
	return TrustedKey{Name: name, NotBefore: notBefore, NotAfter: notAfter, pub: pub, id: id, verifier: v}, nil
}

// ID is the key's sigstore hint.
func (k TrustedKey) ID() string { return k.id }

// validAt reports why k may not vouch at time now, or nil.
func (k TrustedKey) validAt(now time.Time) error {
	if !k.NotBefore.IsZero() && now.Before(k.NotBefore) {
		return fmt.Errorf("%w: %s is valid from %s", ErrKeyNotValid, k.Name, k.NotBefore.Format(time.RFC3339))
	}
	if !k.NotAfter.IsZero() && now.After(k.NotAfter) {
		return fmt.Errorf("%w: %s expired at %s", ErrKeyNotValid, k.Name, k.NotAfter.Format(time.RFC3339))
	}
	return nil
}

// Counts reports why k's signature v does not count at time now, or nil:
// it counts when k is valid now, or was when v reached the registry (a
// retired key keeps vouching for what it signed in its window).
func (k TrustedKey) Counts(v Verified, now time.Time) error {
	err := k.validAt(now)
	if err != nil && !v.ArrivedAt.IsZero() && k.validAt(v.ArrivedAt) == nil {
		return nil
	}
	return err
}

// Trust is who must vouch for an image: Require distinct keys among Keys.
type Trust struct {
	Keys    []TrustedKey
	Require int
}

func (t Trust) check() error {
	if len(t.Keys) == 0 {
		return fmt.Errorf("%w: no keys", ErrBadTrust)
	}
	if t.Require < 1 || t.Require > len(t.Keys) {
		return fmt.Errorf("%w: require %d of %d keys", ErrBadTrust, t.Require, len(t.Keys))
	}
	seen := map[string]string{}
	for _, k := range t.Keys {
		if other, dup := seen[k.id]; dup {
			return fmt.Errorf("%w: %s and %s are the same key", ErrBadTrust, other, k.Name)
		}
		seen[k.id] = k.Name
	}
	return nil
}

// trustFile is the YAML document `berth verify --trust` reads.
type trustFile struct {
	Require int `yaml:"require"`
	Keys    []struct {
		Name      string    `yaml:"name"`
		Path      string    `yaml:"path"`
		Key       string    `yaml:"key"`
		NotBefore time.Time `yaml:"not-before"`
		NotAfter  time.Time `yaml:"not-after"`
	} `yaml:"keys"`
}

// LoadTrustFile reads a trust file. Each key is given inline (key: PEM) or
// by a path relative to the file; require defaults to 1, so any one valid
// key suffices, which is what a rotation needs.
func LoadTrustFile(path string) (Trust, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Trust{}, fmt.Errorf("trust file: %w", err)
	}
	var tf trustFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&tf); err != nil {
		return Trust{}, fmt.Errorf("%w: %s: %v", ErrBadTrust, path, err)
	}
	t := Trust{Require: tf.Require}
	if t.Require == 0 {
		t.Require = 1
	}
	for i, k := range tf.Keys {
		label := k.Name
		if label == "" {
			label = fmt.Sprintf("%s key %d", filepath.Base(path), i+1)
		}
		var pemBytes []byte
		switch {
		case k.Key != "" && k.Path != "":
			return Trust{}, fmt.Errorf("%w: %s: %s has both key and path", ErrBadTrust, path, label)
		case k.Key != "":
			pemBytes = []byte(k.Key)
		case k.Path != "":
			p := k.Path
			if !filepath.IsAbs(p) {
				p = filepath.Join(filepath.Dir(path), p)
			}
			if pemBytes, err = os.ReadFile(p); err != nil {
				return Trust{}, fmt.Errorf("%w: %s: %s: %v", ErrBadTrust, path, label, err)
			}
		default:
			return Trust{}, fmt.Errorf("%w: %s: %s has neither key nor path", ErrBadTrust, path, label)
		}
		pub, err := keys.ParsePublic(pemBytes)
		if err != nil {
			return Trust{}, fmt.Errorf("%w: %s: %s: %v", ErrBadTrust, path, label, err)
		}
		tk, err := NewTrustedKey(label, pub, k.NotBefore, k.NotAfter)
		if err != nil {
			return Trust{}, fmt.Errorf("%s: %w", path, err)
		}
		t.Keys = append(t.Keys, tk)
	}
	if err := t.check(); err != nil {
		return Trust{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Public returns the key itself.
func (k TrustedKey) Public() crypto.PublicKey { return k.pub }
