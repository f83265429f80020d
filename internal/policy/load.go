// Package policy is berth's one policy value: which images may be pulled
// and run, read from sigstore policy-controller's ClusterImagePolicy
// (policy.sigstore.dev/v1beta1, unchanged) and berth's own ImagePolicy
// (berth.dev/v1), and evaluated the same way by the CI gate (`berth
// policy check`), the registry at pull time and the Kubernetes admission
// webhook. Signatures are verified cryptographically through
// internal/sign (cosign's tag scheme and sigstore bundles); vulnerability
// and license rules read a scan report (the one the server stored for the
// digest, or one the CLI made).
package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/keys"
)

// ErrInvalid means a policy document cannot be used; the message names
// the file and line.
var ErrInvalid = errors.New("invalid policy")

// API versions and kinds a policy file may hold.
const (
	SigstoreAPIVersion = "policy.sigstore.dev/v1beta1"
	SigstoreAlpha      = "policy.sigstore.dev/v1alpha1"
	KindCIP            = "ClusterImagePolicy"
	BerthAPIVersion    = "berth.dev/v1"
	KindImagePolicy    = "ImagePolicy"
)

// Mode says what a failing document does: refuse (enforce) or only warn.
type Mode string

// The modes, with policy-controller's names.
const (
	Enforce Mode = "enforce"
	Warn    Mode = "warn"
)

// KeyResolver finds the public keys a policy names instead of holding
// (ClusterImagePolicy key.secretRef, ImagePolicy keys[].ref): berth's
// trust files and key directories. It returns the keys under that name.
type KeyResolver func(name string) ([]sign.TrustedKey, error)

// Options tune loading.
type Options struct {
	// Keys resolves key references; nil refuses every reference.
	Keys KeyResolver
	// Dir is where relative key paths are read from; "" refuses them.
	Dir string
	// ReportOnly refuses every rule that reads signatures or
	// attestations (signers, attestations, key authorities, conditions
	// reading signers or attestations): the policy judges a scan report
	// alone, as a scan stage's rule does (custody.Rule). Its keys are
	// refused before they are read.
	ReportOnly bool
}

// errReportOnly is why Options.ReportOnly refuses a rule.
const errReportOnly = "a policy that judges a scan report alone (a scan stage's) cannot require signatures or attestations: " +
	"the stage vouches for what the scan found; require the stage's signature beside the others in the project policy"

// Policy is a loaded policy: every document of a file (or directory), in
// order. Every document whose images match applies, and all that apply
// must pass.
type Policy struct {
	// Docs are the documents, in file order.
	Docs []*Document
	// Version identifies the policy's content (SHA-256 of the sources),
	// so caches keyed by it forget verdicts when the policy changes.
	Version string
	// Source names where it came from, for messages.
	Source string

	keys  []sign.TrustedKey // every distinct key any document trusts
	names map[string]string // key id → the name its first use gave it
}

// Document is one policy document of either kind.
type Document struct {
	Kind   string
	Name   string
	Mode   Mode
	Images []Glob // empty: every image
	line   int

	cip   *cipSpec
	berth *berthSpec
}

// Load reads a policy file, or every *.yaml, *.yml and *.json file of a
// directory (in name order).
func Load(path string, opts Options) (*Policy, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	files := []string{path}
	if st.IsDir() {
		files = nil
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".yaml", ".yml", ".json":
				if !e.IsDir() {
					files = append(files, filepath.Join(path, e.Name()))
				}
			}
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%w: %s holds no .yaml, .yml or .json file", ErrInvalid, path)
		}
	}
	var all *Policy
	h := sha256.New()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		o := opts
		if o.Dir == "" {
			o.Dir = filepath.Dir(f)
		}
		p, err := Parse(f, data, o)
		if err != nil {
			return nil, err
		}
		h.Write(data)
		if all == nil {
			all = p
			continue
		}
		all.Docs = append(all.Docs, p.Docs...)
	}
	all.Source = path
	all.Version = hex.EncodeToString(h.Sum(nil))
	if err := all.collectKeys(); err != nil {
		return nil, err
	}
	return all, nil
}

// Parse reads policy documents (YAML, several separated by "---", or
// JSON). Unknown fields, unknown kinds, bad keys and expressions that do
// not compile are refused with the line they are on.
func Parse(name string, data []byte, opts Options) (*Policy, error) {
	sum := sha256.Sum256(data)
	p := &Policy{Source: name, Version: hex.EncodeToString(sum[:])}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	for {
		var d rawDocument
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s", ErrInvalid, yamlMessage(name, err))
		}
		if d.cip == nil && d.berth == nil {
			continue // an empty document ("---" with nothing after it)
		}
		doc, err := d.compile(opts)
		if err != nil {
			return nil, fmt.Errorf("%w: %s:%v", ErrInvalid, name, err)
		}
		p.Docs = append(p.Docs, doc)
	}
	if len(p.Docs) == 0 {
		return nil, fmt.Errorf("%w: %s holds no policy document", ErrInvalid, name)
	}
	seen := map[string]int{}
	for _, d := range p.Docs {
		if prev, dup := seen[d.Kind+"/"+d.Name]; dup {
			return nil, fmt.Errorf("%w: %s:%d: %s %q is defined again (first at line %d)", ErrInvalid, name, d.line, d.Kind, d.Name, prev)
		}
		seen[d.Kind+"/"+d.Name] = d.line
	}
	if err := p.collectKeys(); err != nil {
		return nil, err
	}
	return p, nil
}

// collectKeys gathers the distinct keys of every document, so that one
// pass over an image's signatures serves them all.
func (p *Policy) collectKeys() error {
	p.keys, p.names = nil, map[string]string{}
	add := func(ks []sign.TrustedKey) {
		for _, k := range ks {
			if _, ok := p.names[k.ID()]; ok {
				continue
			}
			p.names[k.ID()] = k.Name
			p.keys = append(p.keys, k)
		}
	}
	for _, d := range p.Docs {
		if d.cip != nil {
			for _, a := range d.cip.authorities {
				add(a.keys)
			}
		}
		if d.berth != nil {
			add(d.berth.keys)
		}
	}
	return nil
}

// Kinds lists the kinds of the policy's documents with their names, for
// messages ("ClusterImagePolicy/release").
func (p *Policy) Kinds() []string {
	var out []string
	for _, d := range p.Docs {
		out = append(out, d.Kind+"/"+d.Name)
	}
	return out
}

// rawDocument is one YAML document before its kind is known: its header
// is read first, then the rest is decoded strictly into that kind's
// structure by the same decoder (so unknown fields are refused with their
// line).
type rawDocument struct {
	APIVersion string
	Kind       string
	Name       string
	line       int
	cip        *cipDocument
	berth      *berthDocument
}

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// UnmarshalYAML implements yaml.v3's older Unmarshaler form on purpose:
// its callback decodes with the calling decoder, so the strict field check
// and the original line numbers carry over to the kind's structure.
func (d *rawDocument) UnmarshalYAML(unmarshal func(any) error) error {
	var hdr map[string]headerValue
	if err := unmarshal(&hdr); err != nil {
		return fmt.Errorf("a policy document is a mapping with apiVersion, kind, metadata and spec: %w", err)
	}
	d.line = 0
	for _, v := range hdr {
		if d.line == 0 || v.line < d.line {
			d.line = v.line
		}
	}
	d.APIVersion, d.Kind = hdr["apiVersion"].value, hdr["kind"].value
	line := d.line
	switch {
	case (d.APIVersion == SigstoreAPIVersion || d.APIVersion == SigstoreAlpha) && d.Kind == KindCIP:
		d.cip = &cipDocument{}
		return unmarshal(d.cip)
	case d.APIVersion == BerthAPIVersion && d.Kind == KindImagePolicy:
		d.berth = &berthDocument{}
		return unmarshal(d.berth)
	default:
		return fmt.Errorf("line %d: apiVersion %q kind %q: want %s %s or %s %s", line, d.APIVersion, d.Kind,
			SigstoreAPIVersion, KindCIP, BerthAPIVersion, KindImagePolicy)
	}
}

// yamlMessage rewrites the decoder's "yaml: unmarshal errors: line N: …
// in type struct {…}" as "NAME:N: …", one line per problem.
func yamlMessage(name string, err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			if n, after, ok := strings.Cut(rest, ": "); ok {
				return name + ":" + n + ": " + after
			}
		}
		return name + ": " + msg
	}
	var out []string
	for _, e := range te.Errors {
		if i := strings.Index(e, " in type "); i >= 0 {
			e = e[:i]
		}
		if rest, ok := strings.CutPrefix(e, "line "); ok {
			if n, after, ok := strings.Cut(rest, ": "); ok {
				e = n + ": " + after
			}
			out = append(out, name+":"+e)
			continue
		}
		out = append(out, name+": "+e)
	}
	return strings.Join(out, "; ")
}

// headerValue is a top-level value of a document, read only for its
// text (apiVersion, kind) and line.
type headerValue struct {
	value string
	line  int
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (h *headerValue) UnmarshalYAML(n *yaml.Node) error {
	h.line = n.Line
	if n.Kind == yaml.ScalarNode {
		h.value = n.Value
	}
	return nil
}

// Text is a string field that remembers its line, so that a bad key or
// expression is reported where it is written.
type Text struct {
	S    string
	Line int
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (t *Text) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a string", n.Line)
	}
	t.S, t.Line = n.Value, n.Line
	return nil
}

func (d *rawDocument) compile(opts Options) (*Document, error) {
	switch {
	case d.cip != nil:
		return d.cip.compile(d.line, opts)
	case d.berth != nil:
		return d.berth.compile(d.line, opts)
	}
	return nil, fmt.Errorf("%d: empty document", d.line)
}

// parseMode reads spec.mode; empty is enforce.
func parseMode(m Text) (Mode, error) {
	switch Mode(m.S) {
	case "", Enforce:
		return Enforce, nil
	case Warn:
		return Warn, nil
	}
	return "", fmt.Errorf("%d: mode %q: want enforce or warn", m.Line, m.S)
}

// pemKey parses an inline PEM public key.
func pemKey(name string, data Text, notBefore, notAfter time.Time) (sign.TrustedKey, error) {
	pub, err := keys.ParsePublic([]byte(data.S))
	if err != nil {
		return sign.TrustedKey{}, fmt.Errorf("%d: key %s: %v", data.Line, name, err)
	}
	k, err := sign.NewTrustedKey(name, pub, notBefore, notAfter)
	if err != nil {
		return sign.TrustedKey{}, fmt.Errorf("%d: %v", data.Line, err)
	}
	return k, nil
}

// fileKey reads a public key file relative to the policy's folder.
func fileKey(name string, path Text, dir string, notBefore, notAfter time.Time) (sign.TrustedKey, error) {
	p := path.S
	if !filepath.IsAbs(p) {
		if dir == "" {
			return sign.TrustedKey{}, fmt.Errorf("%d: key %s: a relative path needs a policy file to be relative to", path.Line, name)
		}
		p = filepath.Join(dir, p)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return sign.TrustedKey{}, fmt.Errorf("%d: key %s: %v", path.Line, name, err)
	}
	return pemKey(name, Text{S: string(data), Line: path.Line}, notBefore, notAfter)
}

// refKeys resolves a key reference through the resolver.
func refKeys(ref Text, opts Options) ([]sign.TrustedKey, error) {
	if opts.Keys == nil {
		return nil, fmt.Errorf("%d: key reference %q: no key store to resolve it from (give berth trust files)", ref.Line, ref.S)
	}
	ks, err := opts.Keys(ref.S)
	if err != nil {
		return nil, fmt.Errorf("%d: key reference %q: %v", ref.Line, ref.S, err)
	}
	if len(ks) == 0 {
		return nil, fmt.Errorf("%d: key reference %q: no such key", ref.Line, ref.S)
	}
	return ks, nil
}

// TrustResolver resolves key references from berth trust files: a name is
// a key's name in one of the files (several keys may share it) or the
// base name of a file without its extension (all of its keys).
func TrustResolver(files ...string) (KeyResolver, error) {
	byName := map[string][]sign.TrustedKey{}
	for _, f := range files {
		t, err := sign.LoadTrustFile(f)
		if err != nil {
			return nil, err
		}
		base := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
		byName[base] = append(byName[base], t.Keys...)
		for _, k := range t.Keys {
			if k.Name != base {
				byName[k.Name] = append(byName[k.Name], k)
			}
		}
	}
	return func(name string) ([]sign.TrustedKey, error) {
		ks, ok := byName[name]
		if !ok {
			known := make([]string, 0, len(byName))
			for n := range byName {
				known = append(known, n)
			}
			sort.Strings(known)
			return nil, fmt.Errorf("not in the trust files (known: %s)", strings.Join(known, ", "))
		}
		return ks, nil
	}, nil
}
