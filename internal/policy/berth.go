package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/misconfig"
	"berth.dev/berth/internal/sign"
)

// berthDocument is berth's own kind, berth.dev/v1 ImagePolicy: what users
// of Harbor and Kyverno expect beside signatures.
type berthDocument struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	Spec       struct {
		Mode   Text   `yaml:"mode"`
		Images []Glob `yaml:"images"`
		// Signers: Require of Keys must have signed (k of n; default all).
		Signers *struct {
			Require int        `yaml:"require"`
			Keys    []berthKey `yaml:"keys"`
			// MaxAge refuses signatures older than this (signature
			// freshness), by the time the signed payload states.
			MaxAge Text `yaml:"maxAge"`
		} `yaml:"signers"`
		// Attestations must each be present, signed by one of the
		// signers' keys, and pass their policy.
		Attestations []struct {
			Name          Text       `yaml:"name"`
			PredicateType Text       `yaml:"predicateType"`
			Policy        *cipPolicy `yaml:"policy"`
		} `yaml:"attestations"`
		Vulnerabilities *struct {
			// Severity denies findings at or above it.
			Severity Text `yaml:"severity"`
			// FixableOnly denies only findings with a fix.
			FixableOnly bool `yaml:"fixableOnly"`
			// MaxCVSS denies findings scored above it.
			MaxCVSS *float64 `yaml:"maxCVSS"`
			// Allow lists accepted vulnerabilities until they expire.
			Allow []struct {
				ID      Text   `yaml:"id"`
				Expires Text   `yaml:"expires"`
				Reason  string `yaml:"reason"`
			} `yaml:"allow"`
		} `yaml:"vulnerabilities"`
		// Secrets denies credentials the secret scanner found (berth scan
		// --scanners secret; the server's scan.scanners).
		Secrets *struct {
			// Deny: true denies every secret; Severity only those at or
			// above it.
			Deny     bool `yaml:"deny"`
			Severity Text `yaml:"severity"`
			// Allow lists accepted secrets by rule id (and path).
			Allow []findingAllow `yaml:"allow"`
		} `yaml:"secrets"`
		// Misconfigurations denies failed image checks (BI001 …) the
		// misconfig scanner found.
		Misconfigurations *struct {
			// Deny lists the rule ids that are refused; Severity refuses
			// every rule at or above it. Either or both.
			Deny     []Text         `yaml:"deny"`
			Severity Text           `yaml:"severity"`
			Allow    []findingAllow `yaml:"allow"`
		} `yaml:"misconfigurations"`
		Licenses *struct {
			Deny []string `yaml:"deny"`
		} `yaml:"licenses"`
		Registries *struct {
			Allow []string `yaml:"allow"`
		} `yaml:"registries"`
		Tags *struct {
			// Deny lists tags (globs) that are refused; "latest" is the
			// usual one.
			Deny []string `yaml:"deny"`
			// RequireDigest refuses references by tag alone (a tag is
			// mutable; a digest is not).
			RequireDigest bool `yaml:"requireDigest"`
		} `yaml:"tags"`
		Conditions []struct {
			Name       Text   `yaml:"name"`
			Expression Text   `yaml:"expression"`
			Message    string `yaml:"message"`
		} `yaml:"conditions"`
		Exceptions []struct {
			Name    Text     `yaml:"name"`
			Images  []Glob   `yaml:"images"`
			Rules   []string `yaml:"rules"`
			Expires Text     `yaml:"expires"`
			Reason  string   `yaml:"reason"`
		} `yaml:"exceptions"`
	} `yaml:"spec"`
}

// findingAllow accepts a secret or misconfiguration finding: a rule id
// alone ("private-key", "BI006"), or an entry that narrows it to a path
// and lets it expire, as vulnerabilities.allow does.
type findingAllow struct {
	ID      Text   `yaml:"id"`
	Path    Text   `yaml:"path"`
	Expires Text   `yaml:"expires"`
	Reason  string `yaml:"reason"`
}

// UnmarshalYAML implements yaml.v3's older Unmarshaler form on purpose
// (see rawDocument): the mapping form is decoded by the strict decoder,
// so unknown fields are refused with their line.
func (a *findingAllow) UnmarshalYAML(unmarshal func(any) error) error {
	var id Text
	if err := unmarshal(&id); err == nil {
		*a = findingAllow{ID: id}
		return nil
	}
	type plain findingAllow // without this method, so no recursion
	return unmarshal((*plain)(a))
}

type berthKey struct {
	Name      Text `yaml:"name"`
	Data      Text `yaml:"data"`
	Path      Text `yaml:"path"`
	Ref       Text `yaml:"ref"`
	NotBefore Text `yaml:"notBefore"`
	NotAfter  Text `yaml:"notAfter"`
}

// Rule names, as violations and exceptions name them.
const (
	RuleSignature     = "signature"
	RuleAttestation   = "attestation"
	RuleVulnerability = "vulnerability"
	RuleLicense       = "license"
	RuleSecret        = "secret"
	RuleMisconfig     = "misconfiguration"
	RuleRegistry      = "registry"
	RuleTag           = "tag"
	RuleCondition     = "condition"
	RuleAuthority     = "authority" // a ClusterImagePolicy's authorities
	RulePolicy        = "policy"    // a ClusterImagePolicy's spec.policy
)

var ruleNames = map[string]bool{RuleSignature: true, RuleAttestation: true, RuleVulnerability: true, RuleLicense: true,
	RuleSecret: true, RuleMisconfig: true, RuleRegistry: true, RuleTag: true, RuleCondition: true, "*": true}

// berthSpec is a compiled ImagePolicy.
type berthSpec struct {
	keys         []sign.TrustedKey
	require      int
	maxAge       time.Duration
	attestations []*attestRule
	vulns        *vulnRule
	secrets      *findingRule
	misconfig    *findingRule
	licenseDeny  []Glob
	registries   []Glob
	tagDeny      []Glob
	digestOnly   bool
	conditions   []*condition
	exceptions   []exception
}

type vulnRule struct {
	severity    match.Severity // "" when not set
	fixableOnly bool
	maxCVSS     *float64
	allow       []allowEntry
}

// findingRule is a compiled secrets or misconfigurations rule: a finding
// is denied when its rule id is listed, or when it is at or above the
// severity, unless an allow entry in force covers it.
type findingRule struct {
	all      bool            // secrets.deny: true
	ids      map[string]bool // misconfigurations.deny
	severity match.Severity  // "" when not set
	allow    []findingAllowEntry
}

type findingAllowEntry struct {
	allowEntry
	path string // a glob over the finding's path; "" any
}

func (r *findingRule) denies(id, severity string) bool {
	if r.all || r.ids[strings.ToUpper(id)] {
		return true
	}
	return r.severity != "" && match.Severity(strings.ToUpper(severity)).Rank() >= r.severity.Rank()
}

// compileFindingAllow compiles allow entries of the rule named what.
func compileFindingAllow(what string, line int, entries []findingAllow) ([]findingAllowEntry, error) {
	var out []findingAllowEntry
	for _, a := range entries {
		if a.ID.S == "" {
			return nil, fmt.Errorf("%d: %s.allow: an entry needs an id (the scanner's rule id)", max(a.ID.Line, a.Path.Line, a.Expires.Line, line), what)
		}
		exp, err := parseTime(a.Expires)
		if err != nil {
			return nil, err
		}
		out = append(out, findingAllowEntry{allowEntry: allowEntry{id: a.ID.S, expires: exp, reason: a.Reason}, path: strings.TrimPrefix(a.Path.S, "/")})
	}
	return out, nil
}

func compileSeverity(what string, t Text) (match.Severity, error) {
	if t.S == "" {
		return "", nil
	}
	sev, err := match.ParseSeverity(t.S)
	if err != nil {
		return "", fmt.Errorf("%d: %s.severity: %v", t.Line, what, err)
	}
	return sev, nil
}

type allowEntry struct {
	id      string
	expires time.Time
	reason  string
}

type exception struct {
	name    string
	images  []Glob
	rules   map[string]bool
	expires time.Time
	reason  string
}

func (b *berthDocument) compile(line int, opts Options) (*Document, error) {
	s := b.Spec
	d := &Document{Kind: KindImagePolicy, Name: b.Metadata.Name, Images: s.Images, line: line, berth: &berthSpec{}}
	if d.Name == "" {
		return nil, fmt.Errorf("%d: %s needs metadata.name", line, KindImagePolicy)
	}
	var err error
	if d.Mode, err = parseMode(s.Mode); err != nil {
		return nil, err
	}
	bs := d.berth
	if opts.ReportOnly {
		if s.Signers != nil {
			return nil, fmt.Errorf("%d: %s %s: signers: %s", line, KindImagePolicy, d.Name, errReportOnly)
		}
		if len(s.Attestations) > 0 {
			return nil, fmt.Errorf("%d: %s %s: attestations: %s", max(s.Attestations[0].Name.Line, line), KindImagePolicy, d.Name, errReportOnly)
		}
	}
	if s.Signers != nil {
		for i, k := range s.Signers.Keys {
			ks, err := k.compile(i, opts)
			if err != nil {
				return nil, err
			}
			bs.keys = append(bs.keys, ks...)
		}
		if len(bs.keys) == 0 {
			return nil, fmt.Errorf("%d: signers needs keys", line)
		}
		// Signers are counted by name: a key store's rotated key is
		// several keys under one name, any of which vouches for it.
		signers := map[string]bool{}
		for _, k := range bs.keys {
			signers[k.Name] = true
		}
		bs.require = s.Signers.Require
		if bs.require == 0 {
			bs.require = len(signers)
		}
		if bs.require < 0 || bs.require > len(signers) {
			return nil, fmt.Errorf("%d: signers: require %d of %d signers", line, s.Signers.Require, len(signers))
		}
		seen := map[string]string{}
		for _, k := range bs.keys {
			if other, dup := seen[k.ID()]; dup {
				return nil, fmt.Errorf("%d: signers: %s and %s are the same key", line, other, k.Name)
			}
			seen[k.ID()] = k.Name
		}
		if s.Signers.MaxAge.S != "" {
			if bs.maxAge, err = parseAge(s.Signers.MaxAge.S); err != nil || bs.maxAge <= 0 {
				return nil, fmt.Errorf("%d: signers.maxAge %q: want a duration such as 720h or 30d", s.Signers.MaxAge.Line, s.Signers.MaxAge.S)
			}
		}
	}
	for _, a := range s.Attestations {
		if len(bs.keys) == 0 {
			return nil, fmt.Errorf("%d: attestation %s: attestations are verified with the signers' keys; give signers", a.Name.Line, a.Name.S)
		}
		r, err := compileAttest(a.Name, a.PredicateType, a.Policy)
		if err != nil {
			return nil, err
		}
		bs.attestations = append(bs.attestations, r)
	}
	if v := s.Vulnerabilities; v != nil {
		r := &vulnRule{fixableOnly: v.FixableOnly, maxCVSS: v.MaxCVSS}
		if v.Severity.S != "" {
			sev, err := match.ParseSeverity(v.Severity.S)
			if err != nil {
				return nil, fmt.Errorf("%d: vulnerabilities.severity: %v", v.Severity.Line, err)
			}
			r.severity = sev
		}
		if r.severity == "" && r.maxCVSS == nil {
			return nil, fmt.Errorf("%d: vulnerabilities needs severity or maxCVSS", line)
		}
		for _, a := range v.Allow {
			if a.ID.S == "" {
				return nil, fmt.Errorf("%d: vulnerabilities.allow: an entry needs an id", line)
			}
			exp, err := parseTime(a.Expires)
			if err != nil {
				return nil, err
			}
			r.allow = append(r.allow, allowEntry{id: a.ID.S, expires: exp, reason: a.Reason})
		}
		bs.vulns = r
	}
	if sc := s.Secrets; sc != nil {
		r := &findingRule{all: sc.Deny}
		if r.severity, err = compileSeverity("secrets", sc.Severity); err != nil {
			return nil, err
		}
		switch {
		case r.all && r.severity != "":
			return nil, fmt.Errorf("%d: secrets: give deny: true (every secret) or severity, not both", sc.Severity.Line)
		case !r.all && r.severity == "":
			return nil, fmt.Errorf("%d: secrets needs deny: true or severity", line)
		}
		if r.allow, err = compileFindingAllow("secrets", line, sc.Allow); err != nil {
			return nil, err
		}
		bs.secrets = r
	}
	if mc := s.Misconfigurations; mc != nil {
		r := &findingRule{ids: map[string]bool{}}
		if r.severity, err = compileSeverity("misconfigurations", mc.Severity); err != nil {
			return nil, err
		}
		for _, id := range mc.Deny {
			rule, ok := misconfig.Lookup(strings.ToUpper(id.S))
			if !ok {
				return nil, fmt.Errorf("%d: misconfigurations.deny: %q is not a misconfiguration rule (BI001 … BI010, see docs/secrets.md)", id.Line, id.S)
			}
			r.ids[rule.ID] = true
		}
		if len(r.ids) == 0 && r.severity == "" {
			return nil, fmt.Errorf("%d: misconfigurations needs deny (rule ids) or severity", line)
		}
		if r.allow, err = compileFindingAllow("misconfigurations", line, mc.Allow); err != nil {
			return nil, err
		}
		bs.misconfig = r
	}
	if s.Licenses != nil {
		for _, l := range s.Licenses.Deny {
			bs.licenseDeny = append(bs.licenseDeny, Glob{Pattern: l, norm: strings.ToLower(l)})
		}
	}
	if s.Registries != nil {
		if len(s.Registries.Allow) == 0 {
			return nil, fmt.Errorf("%d: registries.allow is empty: no image could be used", line)
		}
		for _, r := range s.Registries.Allow {
			bs.registries = append(bs.registries, Glob{Pattern: r, norm: r})
		}
	}
	if s.Tags != nil {
		for _, t := range s.Tags.Deny {
			bs.tagDeny = append(bs.tagDeny, Glob{Pattern: t, norm: t})
		}
		bs.digestOnly = s.Tags.RequireDigest
	}
	for i, c := range s.Conditions {
		name := c.Name.S
		if name == "" {
			name = "condition-" + strconv.Itoa(i)
		}
		cond, err := newCondition(name, c.Expression, c.Message)
		if err != nil {
			return nil, err
		}
		if opts.ReportOnly && cond.needsSigs {
			return nil, fmt.Errorf("%d: condition %s reads signers or attestations: %s", c.Expression.Line, name, errReportOnly)
		}
		bs.conditions = append(bs.conditions, cond)
	}
	for i, e := range s.Exceptions {
		name := e.Name.S
		if name == "" {
			name = "exception-" + strconv.Itoa(i)
		}
		if e.Expires.S == "" {
			return nil, fmt.Errorf("%d: exception %s needs expires: an exception without an end is a policy change", e.Name.Line, name)
		}
		exp, err := parseTime(e.Expires)
		if err != nil {
			return nil, err
		}
		ex := exception{name: name, images: e.Images, expires: exp, reason: e.Reason, rules: map[string]bool{}}
		if len(e.Rules) == 0 {
			return nil, fmt.Errorf("%d: exception %s needs rules (%s, or \"*\")", e.Name.Line, name, strings.Join(ruleList(), ", "))
		}
		for _, r := range e.Rules {
			if !ruleNames[r] {
				return nil, fmt.Errorf("%d: exception %s: rule %q: want one of %s, or \"*\"", e.Name.Line, name, r, strings.Join(ruleList(), ", "))
			}
			ex.rules[r] = true
		}
		bs.exceptions = append(bs.exceptions, ex)
	}
	if len(bs.keys) == 0 && bs.vulns == nil && bs.secrets == nil && bs.misconfig == nil && bs.licenseDeny == nil && bs.registries == nil && s.Tags == nil && bs.conditions == nil {
		return nil, fmt.Errorf("%d: %s %s has no rules", line, KindImagePolicy, d.Name)
	}
	return d, nil
}

func ruleList() []string {
	return []string{RuleSignature, RuleAttestation, RuleVulnerability, RuleSecret, RuleMisconfig, RuleLicense, RuleRegistry, RuleTag, RuleCondition}
}

func (k berthKey) compile(i int, opts Options) ([]sign.TrustedKey, error) {
	name := k.Name.S
	if name == "" {
		name = fmt.Sprintf("key-%d", i)
	}
	nb, err := parseTime(k.NotBefore)
	if err != nil {
		return nil, err
	}
	na, err := parseTime(k.NotAfter)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, t := range []Text{k.Data, k.Path, k.Ref} {
		if t.S != "" {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("%d: key %s: give exactly one of data, path or ref", k.Name.Line, name)
	}
	switch {
	case k.Data.S != "":
		tk, err := pemKey(name, k.Data, nb, na)
		return []sign.TrustedKey{tk}, err
	case k.Path.S != "":
		tk, err := fileKey(name, k.Path, opts.Dir, nb, na)
		return []sign.TrustedKey{tk}, err
	}
	ks, err := refKeys(k.Ref, opts)
	if err != nil {
		return nil, err
	}
	if k.Name.S == "" {
		name = k.Ref.S
	}
	return renameKeys(ks, name)
}

// renameKeys names every key of a reference as the policy names it: the
// several keys of a rotated signer are one signer.
func renameKeys(ks []sign.TrustedKey, name string) ([]sign.TrustedKey, error) {
	out := make([]sign.TrustedKey, 0, len(ks))
	for _, k := range ks {
		tk, err := sign.NewTrustedKey(name, k.Public(), k.NotBefore, k.NotAfter)
		if err != nil {
			return nil, err
		}
		out = append(out, tk)
	}
	return out, nil
}

// parseTime reads an RFC 3339 time or a date; empty is the zero time.
func parseTime(t Text) (time.Time, error) {
	if t.S == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if v, err := time.Parse(layout, t.S); err == nil {
			return v, nil
		}
	}
	return time.Time{}, fmt.Errorf("%d: %q is not a date (2025-12-31) or an RFC 3339 time", t.Line, t.S)
}

// parseAge reads a Go duration, or a number of days ("30d").
func parseAge(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil {
			return 0, err
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}
