package inventory

import "strings"

// redactPackage removes URL credentials from the fields of p that end up
// in every output (purl, SBOM, report): a lockfile may name a git or
// tarball dependency by a URL with a token in it
// (git+https://user:TOKEN@host/repo.git), and an analyzer that takes such
// a URL for a name or version must not leak it. Analyzers avoid it in the
// first place; this is the net under them.
func redactPackage(p *Package) {
	p.Name = RedactURLs(p.Name)
	p.Version = RedactURLs(p.Version)
	p.SourceVersion = RedactURLs(p.SourceVersion)
}

// RedactURLs drops the userinfo (user:password@, token@) of every URL in
// s: "git+https://u:t@host/r.git#abc" becomes "git+https://host/r.git#abc".
// scp-like git addresses (git@host:repo) name a user, not a secret, and
// are kept.
func RedactURLs(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+3])
		s = s[i+3:]
		// The authority ends at the first "/", "?" or "#"; userinfo is
		// what comes before its last "@".
		end := strings.IndexAny(s, "/?#")
		if end < 0 {
			end = len(s)
		}
		if at := strings.LastIndex(s[:end], "@"); at >= 0 {
			s = s[at+1:]
		}
	}
}
