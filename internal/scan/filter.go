package scan

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"berth.dev/berth/internal/match"
)

// SeverityFilter reads a --severity value into the severity fields of a
// filter. Two forms are accepted:
//
//	LOW,HIGH,CRITICAL   exactly these ratings (Trivy's list form)
//	HIGH+               this rating and above; UNKNOWN findings are kept,
//	                    since a missing score must not hide a finding
//
// An empty spec filters nothing.
func SeverityFilter(spec string) (match.Filter, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return match.Filter{}, nil
	}
	if min, ok := strings.CutSuffix(spec, "+"); ok {
		if strings.Contains(min, ",") {
			return match.Filter{}, fmt.Errorf("severity %q: a threshold (HIGH+) names one rating, a list (HIGH,CRITICAL) has no +", spec)
		}
		s, err := match.ParseSeverity(min)
		if err != nil {
			return match.Filter{}, fmt.Errorf("severity %q: %w", spec, err)
		}
		return match.Filter{MinSeverity: s}, nil
	}
	list, err := match.ParseSeverities(spec)
	if err != nil {
		return match.Filter{}, fmt.Errorf("severity %q: %w", spec, err)
	}
	return match.Filter{Severities: list}, nil
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
