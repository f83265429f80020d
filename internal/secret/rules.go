package secret

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
)

// The rule set is gitleaks' default configuration (embedded as data, not
// imported: importing gitleaks costs ~70 modules and ~4 ms of package
// init on every berth command, and building its detector ~100 ms) plus
// berth's own file. Both are parsed on first use, and each regexp is
// compiled the first time a keyword of its rule is seen, so a scan whose
// layers all come from the cache compiles none.
var (
	//go:embed ruledata/gitleaks.toml
	gitleaksTOML []byte
	//go:embed ruledata/berth.toml
	berthTOML []byte
)

// engineVersion is bumped whenever the scanner finds something different
// in the same bytes with the same rules; it is part of Ruleset.Version.
const engineVersion = 1

// Severity ratings of secrets, the same words as vulnerabilities'.
const (
	SeverityCritical = "CRITICAL"
	SeverityHigh     = "HIGH"
	SeverityMedium   = "MEDIUM"
	SeverityLow      = "LOW"
)

// Rule is one kind of secret.
type Rule struct {
	ID          string
	Description string
	Severity    string
	// Keywords (lower case): the rule's regexp runs only near one of them.
	Keywords    []string
	SecretGroup int
	// Entropy is the Shannon entropy (bits per byte) the secret must exceed.
	Entropy float64

	regex     *lazyRegexp // nil for a path-only rule
	path      *lazyRegexp
	allow     []*allowlist
	multiline bool // matches may span lines: run on a wide window
	generic   bool // a generic rule gives way to a specific one on the same secret
	// Shapes (shape.go): prefix rules run anchored at the keyword;
	// assignment rules, when a value is assigned after the keyword,
	// anchored at the start of the name holding it.
	assignment bool
	anchored   *lazyRegexp
	boundary   bool
}

// allowlist is one allow rule: a match it covers is not a finding.
type allowlist struct {
	id          string // named allow rules are reported as allowed
	description string
	and         bool
	target      string // "secret" (default), "match" or "line"
	regexes     []*lazyRegexp
	paths       []*lazyRegexp
	stopwords   []string
	targetRules []string // global allowlists: only these rules, when set
}

// Ruleset is a compiled set of rules and allow rules. It is safe for
// concurrent use.
type Ruleset struct {
	Rules []*Rule
	// global allow rules, berth's and the user's before gitleaks' so that
	// a named one sees its matches first.
	global []*allowlist
	kw     *keywordMatcher
	// skipPaths: the whole-file path allow rules.
	skipPaths []*pathRegexp
	// byKeyword: keyword index → the rules it triggers.
	byKeyword [][]int
	pathOnly  []int
	version   string
	// lazy, when set, builds the rule set on first use (Default).
	lazy func() *Ruleset
}

// Version identifies the rules and the engine: the layer cache keys
// secret results by it, so editing a rule or the --secret-config file
// rescans every layer.
func (rs *Ruleset) Version() string { return rs.version }

// lazyRegexp compiles on first use: most rules never see their keyword
// in a given image, and compiling all ~230 regexps costs ~30 ms.
type lazyRegexp struct {
	src  string
	once func() *regexp.Regexp
}

func newLazy(src string) *lazyRegexp {
	return &lazyRegexp{src: src, once: sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(src) })}
}

func (l *lazyRegexp) get() *regexp.Regexp { return l.once() }

// fileConfig is gitleaks' configuration format with berth's extensions
// (see ruledata/berth.toml).
type fileConfig struct {
	Title         string              `toml:"title"`
	MinVersion    string              `toml:"minVersion"`
	Allowlist     *allowlistConfig    `toml:"allowlist"`
	Allowlists    []allowlistConfig   `toml:"allowlists"`
	Rules         []ruleConfig        `toml:"rules"`
	Severities    map[string][]string `toml:"severities"`
	DisabledRules []string            `toml:"disabledRules"`
	// builtin: the embedded files, whose regexps TestEveryRuleCompiles
	// checks, are not compiled up front.
	builtin bool
}

type ruleConfig struct {
	ID          string            `toml:"id"`
	Description string            `toml:"description"`
	Regex       string            `toml:"regex"`
	Path        string            `toml:"path"`
	SecretGroup int               `toml:"secretGroup"`
	Entropy     float64           `toml:"entropy"`
	Keywords    []string          `toml:"keywords"`
	Tags        []string          `toml:"tags"`
	Severity    string            `toml:"severity"`
	Allowlists  []allowlistConfig `toml:"allowlists"`
}

type allowlistConfig struct {
	ID          string   `toml:"id"`
	Description string   `toml:"description"`
	Condition   string   `toml:"condition"`
	RegexTarget string   `toml:"regexTarget"`
	Regexes     []string `toml:"regexes"`
	Paths       []string `toml:"paths"`
	StopWords   []string `toml:"stopwords"`
	Commits     []string `toml:"commits"`
	TargetRules []string `toml:"targetRules"`
}

// Default returns the built-in rule set. It costs nothing until used:
// the rule files are parsed when a file is first scanned, so a scan whose
// layers and config all come from the cache parses no rule (~9 ms).
func Default() (*Ruleset, error) { return defaultSet(), nil }

var defaultSet = sync.OnceValue(func() *Ruleset {
	return &Ruleset{version: versionOf(nil), lazy: sync.OnceValue(func() *Ruleset {
		rs, err := Load(nil)
		if err != nil {
			// The embedded files are checked by the tests; this is a broken build.
			panic(fmt.Sprintf("secret: built-in rules: %v", err))
		}
		return rs
	})}
})

// built is the rule set itself, parsed if it was not yet.
func (rs *Ruleset) built() *Ruleset {
	if rs.lazy != nil {
		return rs.lazy()
	}
	return rs
}

// versionOf hashes the rule files and the engine version.
func versionOf(user []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "engine %d\n", engineVersion)
	h.Write(gitleaksTOML)
	h.Write(berthTOML)
	h.Write(user)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// LoadFile returns the built-in rules with a user's configuration file
// added: more rules, allow rules, disabled rules, severities, in
// gitleaks' format with berth's extensions.
func LoadFile(path string) (*Ruleset, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secret config: %w", err)
	}
	rs, err := Load(data)
	if err != nil {
		return nil, fmt.Errorf("secret config %s: %w", path, err)
	}
	return rs, nil
}

// Load builds the built-in rule set plus user (nil for none).
func Load(user []byte) (*Ruleset, error) {
	var configs []fileConfig
	for _, src := range []struct {
		name string
		data []byte
	}{{"gitleaks.toml", gitleaksTOML}, {"berth.toml", berthTOML}, {"", user}} {
		if src.data == nil {
			continue
		}
		c := fileConfig{builtin: src.name != ""}
		md, err := toml.Decode(string(src.data), &c)
		if err != nil {
			return nil, fmt.Errorf("%s%w", prefix(src.name), err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			keys := make([]string, len(und))
			for i, k := range und {
				keys[i] = k.String()
			}
			return nil, fmt.Errorf("%sunknown keys: %s", prefix(src.name), strings.Join(keys, ", "))
		}
		configs = append(configs, c)
	}
	rs, err := build(configs)
	if err != nil {
		return nil, err
	}
	rs.version = versionOf(user)
	return rs, nil
}

func prefix(name string) string {
	if name == "" {
		return ""
	}
	return name + ": "
}

// build checks and assembles the configurations, later ones adding to and
// overriding (a rule of the same id replaces) earlier ones.
func build(configs []fileConfig) (*Ruleset, error) {
	rs := &Ruleset{}
	byID := map[string]int{}
	severity := map[string]string{}
	disabled := map[string]bool{}
	var global [][]*allowlist // per config
	for _, c := range configs {
		var g []*allowlist
		if c.Allowlist != nil {
			a, err := newAllowlist(*c.Allowlist, c.builtin)
			if err != nil {
				return nil, fmt.Errorf("allowlist: %w", err)
			}
			g = append(g, a)
		}
		for i, ac := range c.Allowlists {
			a, err := newAllowlist(ac, c.builtin)
			if err != nil {
				return nil, fmt.Errorf("allowlists[%d]: %w", i, err)
			}
			g = append(g, a)
		}
		global = append(global, g)
		for sev, ids := range c.Severities {
			s := strings.ToUpper(sev)
			if !validSeverity(s) {
				return nil, fmt.Errorf("severities: %q is not a severity (CRITICAL, HIGH, MEDIUM, LOW)", sev)
			}
			for _, id := range ids {
				severity[id] = s
			}
		}
		for _, id := range c.DisabledRules {
			disabled[id] = true
		}
		for _, rc := range c.Rules {
			r, err := newRule(rc, c.builtin)
			if err != nil {
				return nil, err
			}
			if rc.Severity != "" {
				severity[r.ID] = r.Severity
			}
			if i, ok := byID[r.ID]; ok {
				rs.Rules[i] = r
				continue
			}
			byID[r.ID] = len(rs.Rules)
			rs.Rules = append(rs.Rules, r)
		}
	}
	// Later configurations' global allow rules first: berth's named ones
	// must see a documentation example before gitleaks' drop it.
	for i := len(global) - 1; i >= 0; i-- {
		rs.global = append(rs.global, global[i]...)
	}
	rs.Rules = slices.DeleteFunc(rs.Rules, func(r *Rule) bool { return disabled[r.ID] })
	var keywords []string
	kwIndex := map[string]int{}
	for ri, r := range rs.Rules {
		r.Severity = severity[r.ID]
		if r.Severity == "" {
			r.Severity = SeverityHigh
		}
		if r.regex == nil {
			rs.pathOnly = append(rs.pathOnly, ri)
			continue
		}
		for _, k := range r.Keywords {
			ki, ok := kwIndex[k]
			if !ok {
				ki = len(keywords)
				kwIndex[k] = ki
				keywords = append(keywords, k)
				rs.byKeyword = append(rs.byKeyword, nil)
			}
			if !slices.Contains(rs.byKeyword[ki], ri) {
				rs.byKeyword[ki] = append(rs.byKeyword[ki], ri)
			}
		}
	}
	rs.kw = newKeywordMatcher(keywords)
	rs.collectSkipPaths()
	return rs, nil
}

func validSeverity(s string) bool {
	switch s {
	case SeverityCritical, SeverityHigh, SeverityMedium, SeverityLow:
		return true
	}
	return false
}

func newRule(rc ruleConfig, builtin bool) (*Rule, error) {
	if rc.ID == "" {
		return nil, errors.New("a rule has no id")
	}
	r := &Rule{ID: rc.ID, Description: rc.Description, SecretGroup: rc.SecretGroup, Entropy: rc.Entropy,
		generic: strings.Contains(rc.ID, "generic"), Severity: strings.ToUpper(rc.Severity)}
	if r.Severity != "" && !validSeverity(r.Severity) {
		return nil, fmt.Errorf("rule %s: severity %q: want CRITICAL, HIGH, MEDIUM or LOW", rc.ID, rc.Severity)
	}
	if rc.Regex == "" && rc.Path == "" {
		return nil, fmt.Errorf("rule %s: needs a regex or a path", rc.ID)
	}
	if rc.Regex != "" {
		// A user's rule is checked now (a typo is an error when the file
		// is read, not a panic mid-scan) and compiled again on first use.
		if !builtin {
			re, err := regexp.Compile(rc.Regex)
			if err != nil {
				return nil, fmt.Errorf("rule %s: regex: %w", rc.ID, err)
			}
			if rc.SecretGroup > re.NumSubexp() {
				return nil, fmt.Errorf("rule %s: secretGroup %d, but the regex has %d groups", rc.ID, rc.SecretGroup, re.NumSubexp())
			}
		}
		if len(rc.Keywords) == 0 {
			return nil, fmt.Errorf("rule %s: a regex rule needs keywords (berth runs a rule only near one)", rc.ID)
		}
		r.regex = newLazy(rc.Regex)
		r.multiline = strings.Contains(rc.Regex, "(?s") || strings.Contains(rc.Regex, `[\s\S`) ||
			strings.Contains(rc.Regex, `\n`) || strings.Contains(rc.Regex, "(?m")
	}
	for _, k := range rc.Keywords {
		r.Keywords = append(r.Keywords, strings.ToLower(k))
	}
	if rc.Regex != "" {
		r.assignment = assignmentShape(rc.Regex, r.Keywords)
		ok, boundary := prefixShape(rc.Regex, r.Keywords)
		if ok || r.assignment {
			r.anchored, r.boundary = newLazy(`^(?:`+rc.Regex+`)`), boundary && ok
		}
	}
	if rc.Path != "" {
		if !builtin {
			if _, err := regexp.Compile(rc.Path); err != nil {
				return nil, fmt.Errorf("rule %s: path: %w", rc.ID, err)
			}
		}
		r.path = newLazy(rc.Path)
	}
	for i, ac := range rc.Allowlists {
		a, err := newAllowlist(ac, builtin)
		if err != nil {
			return nil, fmt.Errorf("rule %s: allowlists[%d]: %w", rc.ID, i, err)
		}
		r.allow = append(r.allow, a)
	}
	return r, nil
}

func newAllowlist(ac allowlistConfig, builtin bool) (*allowlist, error) {
	a := &allowlist{id: ac.ID, description: ac.Description, target: ac.RegexTarget, targetRules: ac.TargetRules}
	switch strings.ToUpper(ac.Condition) {
	case "", "OR":
	case "AND", "&&":
		a.and = true
	default:
		return nil, fmt.Errorf("condition %q: want OR or AND", ac.Condition)
	}
	switch ac.RegexTarget {
	case "", "secret", "match", "line":
	default:
		return nil, fmt.Errorf("regexTarget %q: want secret, match or line", ac.RegexTarget)
	}
	for _, lists := range []struct {
		src []string
		dst *[]*lazyRegexp
	}{{ac.Regexes, &a.regexes}, {ac.Paths, &a.paths}} {
		for _, s := range lists.src {
			if !builtin {
				if _, err := regexp.Compile(s); err != nil {
					return nil, fmt.Errorf("regex %q: %w", s, err)
				}
			}
			*lists.dst = append(*lists.dst, newLazy(s))
		}
	}
	for _, w := range ac.StopWords {
		a.stopwords = append(a.stopwords, strings.ToLower(w))
	}
	// Commits mean nothing in an image; an allowlist of only commits
	// allows nothing here.
	if len(a.regexes) == 0 && len(a.paths) == 0 && len(a.stopwords) == 0 && len(ac.Commits) == 0 {
		return nil, errors.New("an allowlist needs regexes, paths or stopwords")
	}
	return a, nil
}

// pathAllowed reports whether a global allow rule (one without regexes
// or stopwords, so that it covers whole files) skips path. It runs once
// per file of every layer, so each path regexp first checks the literals
// any match must contain (literal.go).
func (rs *Ruleset) pathAllowed(p string) bool {
	if len(rs.skipPaths) == 0 {
		return false
	}
	lower := strings.ToLower(p)
	for _, re := range rs.skipPaths {
		if re.mayMatch(lower) && re.get().MatchString(p) {
			return true
		}
	}
	return false
}

// collectSkipPaths gathers the path regexps of the global allow rules
// that skip whole files.
func (rs *Ruleset) collectSkipPaths() {
	for _, a := range rs.global {
		if len(a.paths) == 0 || len(a.targetRules) > 0 || (a.and && (len(a.regexes) > 0 || len(a.stopwords) > 0)) {
			continue
		}
		for _, re := range a.paths {
			rs.skipPaths = append(rs.skipPaths, newPathRegexp(re.src))
		}
	}
}

func (a *allowlist) matchPath(p string) bool {
	for _, re := range a.paths {
		if re.get().MatchString(p) {
			return true
		}
	}
	return false
}

// allows reports whether the allow rule covers a candidate.
func (a *allowlist) allows(c *candidate) bool {
	if len(a.targetRules) > 0 && !slices.Contains(a.targetRules, c.rule.ID) {
		return false
	}
	target := c.secret
	switch a.target {
	case "match":
		target = c.match
	case "line":
		target = c.line
	}
	regexOK := false
	for _, re := range a.regexes {
		if re.get().Match(target) {
			regexOK = true
			break
		}
	}
	stopOK := false
	if len(a.stopwords) > 0 {
		lower := bytes.ToLower(c.secret)
		for _, w := range a.stopwords {
			if bytes.Contains(lower, []byte(w)) {
				stopOK = true
				break
			}
		}
	}
	if !a.and {
		return regexOK || stopOK || (len(a.paths) > 0 && a.matchPath(c.path))
	}
	ok := true
	if len(a.paths) > 0 {
		ok = ok && a.matchPath(c.path)
	}
	if len(a.regexes) > 0 {
		ok = ok && regexOK
	}
	if len(a.stopwords) > 0 {
		ok = ok && stopOK
	}
	return ok
}
