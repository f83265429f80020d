// Package secret finds credentials in container images: in the files of
// every layer (including files a later layer deleted, which anyone who
// pulls the image can still read), in tar entry names, and in the image
// config (Env, Labels, and the history's created_by, where build
// arguments leak). Rules are gitleaks' default set plus berth's own
// (ruledata/); allow rules drop placeholders and documentation examples.
// A secret is never kept, printed or logged in full: findings hold a
// masked form only.
package secret

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Where a secret was found.
const (
	KindFile    = "file"    // a file's content
	KindName    = "name"    // a tar entry's name
	KindEnv     = "env"     // the config's Env
	KindLabel   = "label"   // the config's Labels
	KindHistory = "history" // a history entry's created_by
)

// Finding is one secret. It holds no secret in full.
type Finding struct {
	RuleID      string `json:"ruleId"`
	Description string `json:"description"`
	Severity    string `json:"severity"`
	Kind        string `json:"kind"`
	// Path is the file (slash-separated, no leading slash) for KindFile
	// and KindName, the variable name for KindEnv, the label key for
	// KindLabel.
	Path string `json:"path,omitempty"`
	// StartLine and EndLine are 1-based lines of a file's match.
	StartLine int `json:"startLine,omitempty"`
	EndLine   int `json:"endLine,omitempty"`
	// Match is the matched text's first line, the secret in it masked,
	// cut to a readable length.
	Match string `json:"match"`
	// Secret is the secret, masked: a short prefix and stars.
	Secret string `json:"secret"`
	// Layer is the diffID of the layer holding the file; CreatedBy the
	// history entry that made it. History is the index of the history
	// entry a KindHistory finding is in.
	Layer     string `json:"layer,omitempty"`
	CreatedBy string `json:"createdBy,omitempty"`
	History   *int   `json:"history,omitempty"`
	// RemovedBy is the diffID of a later layer that deleted the file (a
	// whiteout or an opaque directory): the secret is not in the
	// container's filesystem, but it is still in the image.
	RemovedBy string `json:"removedBy,omitempty"`
	// Allowed is set when a named allow rule covers the match (a
	// documentation example): the reason. Allowed findings do not count.
	Allowed string `json:"allowed,omitempty"`
	// Fingerprint identifies the finding across scans without revealing
	// the secret: a hash of the rule, place and masked text.
	Fingerprint string `json:"fingerprint"`

	// Where the secret lies in the scanned text, while it is scanned.
	secretStart, secretEnd int
}

// maxMatch bounds Finding.Match.
const maxMatch = 120

// Mask keeps a short prefix of a secret (at most 4 characters, and at
// most a quarter of it) and replaces the rest with stars, at most 12 of
// them (the length of a secret says something about it too).
func Mask(s string) string {
	n := utf8.RuneCountInString(s)
	keep := min(4, n/4)
	var b strings.Builder
	i := 0
	for _, r := range s {
		if i == keep {
			break
		}
		b.WriteRune(printable(r))
		i++
	}
	stars := min(n-keep, 12)
	if stars < 4 {
		stars = 4
	}
	b.WriteString(strings.Repeat("*", stars))
	return b.String()
}

// maskedMatch is the first line of match with every occurrence of secret
// masked, made printable and cut to maxMatch bytes.
func maskedMatch(match, secret []byte) string {
	m := string(match)
	s := string(secret)
	if s != "" {
		m = strings.ReplaceAll(m, s, maskSecret(secret))
	}
	if i := strings.IndexAny(m, "\r\n"); i >= 0 {
		m = m[:i]
	}
	m = strings.Map(printable, strings.ToValidUTF8(m, "\uFFFD"))
	if len(m) > maxMatch {
		cut := maxMatch
		for cut > 0 && !utf8.RuneStart(m[cut]) {
			cut--
		}
		m = m[:cut] + "…"
	}
	return m
}

// printable replaces control characters, which could rewrite a terminal.
func printable(r rune) rune {
	if unicode.IsControl(r) && r != '\t' {
		return '?'
	}
	return r
}

func fingerprint(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// SeverityRank orders severities, worst first (0).
func SeverityRank(s string) int {
	switch s {
	case SeverityCritical:
		return 0
	case SeverityHigh:
		return 1
	case SeverityMedium:
		return 2
	case SeverityLow:
		return 3
	}
	return 4
}
