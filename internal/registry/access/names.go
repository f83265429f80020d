package access

import "strings"

// MaxRepositoryLength bounds repository names: with a registry host in front they
// must still fit the 255 characters many clients allow for a reference.
const MaxRepositoryLength = 255

// ValidRepository reports whether s matches the distribution spec's repository
// name grammar:
//
//	[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
//
// It is hand-written because it runs on every request (and a regexp of
// this grammar costs milliseconds to compile at start-up); the registry and
// the token service share it so both read names the same way.
func ValidRepository(s string) bool {
	if s == "" || len(s) > MaxRepositoryLength {
		return false
	}
	for _, component := range strings.Split(s, "/") {
		if !validComponent(component) {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') }

func validComponent(c string) bool {
	i := 0
	for {
		// An alphanumeric run.
		start := i
		for i < len(c) && isLowerAlnum(c[i]) {
			i++
		}
		if i == start {
			return false
		}
		if i == len(c) {
			return true
		}
		// A separator: ".", "_", "__" or one or more "-".
		switch c[i] {
		case '.':
			i++
		case '_':
			i++
			if i < len(c) && c[i] == '_' {
				i++
			}
		case '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
	}
}
