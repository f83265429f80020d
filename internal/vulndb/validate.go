package vulndb

import (
	"fmt"
	"strings"

	"berth.dev/berth/internal/match/version"
	"berth.dev/berth/internal/osv"
)

// parserFor returns the parser the matcher will compare an ecosystem's
// ECOSYSTEM-range versions with: the same schemes, so a version skipped here
// is exactly one the matcher could not have compared. A version none of them
// can read would make the matcher guess, so the affected entry is skipped at
// import and counted instead. Ecosystems without a scheme are imported
// unchecked.
func parserFor(ecosystem string) func(string) error {
	scheme, ok := version.ForEcosystem(ecosystem)
	if !ok {
		return nil
	}
	return func(s string) error { _, err := scheme.Parse(s); return err }
}

func parseSemver(s string) error { _, err := version.SemVer.Parse(s); return err }

// invalidError says why an affected entry cannot be matched: Reason is the
// category status counts under, the error text names the offending value.
type invalidError struct{ Reason, Detail string }

func (e *invalidError) Error() string { return e.Detail }

func invalid(reason, format string, args ...any) error {
	return &invalidError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// checkAffected reports why an affected entry cannot be matched, or nil.
func checkAffected(a *osv.Affected) error {
	if strings.TrimSpace(a.Package.Ecosystem) == "" || strings.TrimSpace(a.Package.Name) == "" {
		return invalid("affected entry without package", "affected entry without package ecosystem and name")
	}
	// NUL separates the parts of an index key.
	if strings.ContainsRune(a.Package.Ecosystem, 0) || strings.ContainsRune(a.Package.Name, 0) {
		return invalid("package name with a NUL byte", "%q %q: NUL byte in package", a.Package.Ecosystem, a.Package.Name)
	}
	if len(a.Ranges) == 0 && len(a.Versions) == 0 {
		return invalid("affected entry without ranges or versions", "%s %s: neither ranges nor versions", a.Package.Ecosystem, a.Package.Name)
	}
	for i := range a.Ranges {
		if err := checkRange(&a.Ranges[i], a.Package.Ecosystem); err != nil {
			return err
		}
	}
	return nil
}

func checkRange(r *osv.Range, ecosystem string) error {
	eco, _, _ := strings.Cut(ecosystem, ":")
	var parse func(string) error
	switch r.Type {
	case osv.RangeSemver:
		parse = parseSemver
	case osv.RangeEcosystem:
		parse = parserFor(ecosystem)
	case osv.RangeGit:
	default:
		return invalid("unknown range type", "unknown range type %q", r.Type)
	}
	if len(r.Events) == 0 {
		return invalid("range without events", "%s range without events", r.Type)
	}
	for _, e := range r.Events {
		kind, v, err := eventValue(e)
		if err != nil {
			return invalid("malformed range event", "%s range: %v", r.Type, err)
		}
		if parse == nil || (kind == "introduced" && v == "0") || (kind == "limit" && v == "*") {
			continue
		}
		if err := parse(v); err != nil {
			return invalid(fmt.Sprintf("unparsable %s version (%s)", r.Type, eco),
				"unparsable %s version %q in %s range (%s)", kind, v, r.Type, eco)
		}
	}
	return nil
}

func eventValue(e osv.Event) (kind, value string, err error) {
	n := 0
	for _, kv := range [...][2]string{
		{"introduced", e.Introduced}, {"fixed", e.Fixed}, {"last_affected", e.LastAffected}, {"limit", e.Limit},
	} {
		if kv[1] != "" {
			kind, value = kv[0], kv[1]
			n++
		}
	}
	if n != 1 {
		return "", "", fmt.Errorf("event with %d values, want exactly 1", n)
	}
	return kind, value, nil
}
