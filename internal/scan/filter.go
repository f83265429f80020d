package scan

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"berth.dev/berth/internal/match"
)

// SeverityFilter reads a --severity value into the severity fields of a
// filter: a comma-separated list of ratings (Trivy's form,
// "HIGH,CRITICAL": exactly these), in which an item may be a threshold
// ("HIGH+": that rating and every one above it). UNKNOWN is kept only when
// named ("HIGH+,UNKNOWN"), as with Trivy: a threshold is a statement about
// scores, and an unscored finding has none. The summary line counts what
// was left out, so nothing disappears silently.
//
// An empty spec filters nothing.
func SeverityFilter(spec string) (match.Filter, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return match.Filter{}, nil
	}
	var out []match.Severity
	add := func(s match.Severity) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		min, threshold := strings.CutSuffix(item, "+")
		s, err := match.ParseSeverity(min)
		if err != nil {
			return match.Filter{}, fmt.Errorf("severity %q: %w", spec, err)
		}
		if !threshold {
			add(s)
			continue
		}
		for _, r := range thresholdOrder {
			if r.Rank() >= s.Rank() && (r != match.SeverityUnknown || s == match.SeverityUnknown) {
				add(r)
			}
		}
	}
	if len(out) == 0 {
		return match.Filter{}, fmt.Errorf("severity %q: empty severity list", spec)
	}
	return match.Filter{Severities: out}, nil
}

// thresholdOrder lists the ratings a threshold expands to, worst first;
// UNKNOWN+ alone takes every one, UNKNOWN included.
var thresholdOrder = []match.Severity{
	match.SeverityCritical, match.SeverityHigh, match.SeverityMedium,
	match.SeverityLow, match.SeverityNone, match.SeverityUnknown,
}

// DefaultIgnoreFiles are looked for, in this order, in the working
// directory when no ignore file is named; the first that exists is used.
// Trivy's names are on the list so a project moving from Trivy keeps its
// accepted risks.
var DefaultIgnoreFiles = []string{".berthignore", ".trivyignore", ".trivyignore.yaml"}

// FindIgnoreFile returns the first of DefaultIgnoreFiles present in dir,
// or "" when there is none.
func FindIgnoreFile(dir string) (string, error) {
	for _, name := range DefaultIgnoreFiles {
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		switch {
		case err == nil && st.Mode().IsRegular():
			return p, nil
		case err == nil:
			return "", fmt.Errorf("ignore file %s is not a regular file", p)
		case !errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("ignore file: %w", err)
		}
	}
	return "", nil
}
