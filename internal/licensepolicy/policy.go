package licensepolicy

import (
	"fmt"
	"slices"
	"strings"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/report/license"
)

// Finding is one package's license, classified, and what the policy
// says of it.
type Finding struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
	Version   string `json:"version"`
	PURL      string `json:"purl,omitempty"`
	// License is the package's licenses as declared, joined with AND
	// when it declares several.
	License string `json:"license"`
	Class   Class  `json:"class"`
	// Severity rates the class as Trivy rates license categories:
	// network copyleft CRITICAL, strong HIGH, weak MEDIUM, permissive
	// LOW, unknown UNKNOWN.
	Severity string `json:"severity"`
	// Violation, when set, says why the policy refuses the license.
	Violation string `json:"violation,omitempty"`
	Layer     string `json:"layer,omitempty"`
}

// Policy is --license-allow and --license-deny: SPDX ids and class
// names. Empty lists allow everything.
type Policy struct {
	Allow []string
	Deny  []string
}

// ParsePolicy checks the lists: each entry is an SPDX id (in any case)
// or a class name.
func ParsePolicy(allow, deny []string) (Policy, error) {
	var p Policy
	for _, l := range []struct {
		in  []string
		out *[]string
	}{{allow, &p.Allow}, {deny, &p.Deny}} {
		for _, raw := range l.in {
			for _, e := range strings.Split(raw, ",") {
				e = strings.TrimSpace(e)
				if e == "" {
					continue
				}
				if slices.Contains(Classes, Class(strings.ToLower(e))) {
					*l.out = append(*l.out, strings.ToLower(e))
					continue
				}
				id, ok := license.ID(e)
				if !ok {
					return Policy{}, fmt.Errorf("%q is neither an SPDX license id nor a class (%s)", e, joinClasses())
				}
				*l.out = append(*l.out, id)
			}
		}
	}
	return p, nil
}

func joinClasses() string {
	var s []string
	for _, c := range Classes {
		s = append(s, string(c))
	}
	return strings.Join(s, ", ")
}

func (p Policy) empty() bool { return len(p.Allow) == 0 && len(p.Deny) == 0 }

// matches reports whether a list entry covers a license id.
func matches(list []string, id string) bool {
	canon, _ := license.ID(id)
	for _, e := range list {
		if strings.EqualFold(e, id) || canon != "" && strings.EqualFold(e, canon) || string(ClassifyID(id, "")) == e {
			return true
		}
	}
	return false
}

// judge says why the policy refuses a declared license, or "". A choice
// of an OR passes when none of its ids is denied and, with an allow
// list, all are allowed; the license passes when one choice does.
func (p Policy) judge(e *expr) string {
	if p.empty() {
		return ""
	}
	if e == nil {
		if len(p.Allow) > 0 {
			return "no license is known, and --license-allow admits only the licenses it lists"
		}
		return ""
	}
	var reasons []string
	for _, choice := range e.choices() {
		var why []string
		for _, id := range choice {
			if matches(p.Deny, id) {
				why = append(why, id+" is denied")
			} else if len(p.Allow) > 0 && !matches(p.Allow, id) {
				why = append(why, id+" is not allowed")
			}
		}
		if len(why) == 0 {
			return ""
		}
		reasons = append(reasons, strings.Join(why, ", "))
	}
	slices.Sort(reasons)
	return strings.Join(slices.Compact(reasons), "; ")
}

func severity(c Class) string {
	switch c {
	case NetworkCopyleft:
		return "CRITICAL"
	case StrongCopyleft:
		return "HIGH"
	case WeakCopyleft:
		return "MEDIUM"
	case Permissive:
		return "LOW"
	}
	return "UNKNOWN"
}

// Check classifies the license of every package of an inventory and
// applies the policy.
func Check(inv *inventory.Inventory, p Policy) []Finding {
	out := make([]Finding, 0, len(inv.Packages))
	for _, pkg := range inv.Packages {
		// Several licenses declared: all apply. Each is parsed alone, as
		// metadata writes free text as often as expressions.
		var e *expr
		for _, l := range pkg.Licenses {
			if sub := parse(l); sub != nil {
				if e == nil {
					e = sub
				} else if e.op == "AND" {
					e.sub = append(e.sub, sub)
				} else {
					e = &expr{op: "AND", sub: []*expr{e, sub}}
				}
			}
		}
		c := Unknown
		if e != nil {
			c = e.class()
		}
		out = append(out, Finding{
			Ecosystem: string(pkg.Ecosystem), Name: pkg.Name, Version: pkg.Version, PURL: pkg.PURL,
			License: strings.Join(pkg.Licenses, ", "), Class: c, Severity: severity(c),
			Violation: p.judge(e), Layer: pkg.Layer,
		})
	}
	return out
}

// Violations counts the findings the policy refuses.
func Violations(fs []Finding) int {
	n := 0
	for _, f := range fs {
		if f.Violation != "" {
			n++
		}
	}
	return n
}
