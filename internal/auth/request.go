package auth

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// clientAddr is the address a request comes from: the connection's peer,
// or, when the peer is a trusted proxy, the nearest address in
// X-Forwarded-For that is not a trusted proxy. Untrusted peers cannot
// choose their address by sending the header.
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := remoteAddr(r)
	if !inPrefixes(trusted, peer) {
		return peer
	}
	addr := peer
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				// A hop berth cannot read ends the trusted chain: use
				// the last address it could.
				return addr
			}
			addr = a.Unmap()
			if !inPrefixes(trusted, addr) {
				return addr
			}
		}
	}
	return addr
}

func remoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// realmFor is the token endpoint's URL as the client reached the server:
// scheme and host from the request (or from X-Forwarded-Proto and
// X-Forwarded-Host when a trusted proxy sent them).
func realmFor(r *http.Request, trusted []netip.Prefix) string {
	scheme, host := originOf(r, trusted)
	return scheme + "://" + host + TokenPath
}

// originOf is the scheme and host the client reached the server at.
func originOf(r *http.Request, trusted []netip.Prefix) (scheme, host string) {
	scheme, host = "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if inPrefixes(trusted, remoteAddr(r)) {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
			scheme = p
		}
		if h := r.Header.Get("X-Forwarded-Host"); h != "" && !strings.ContainsAny(h, "/\\@ \"") {
			host = h
		}
	}
	return scheme, host
}

// SameOrigin reports whether origin, a browser's Origin header, names the
// origin the request reached berth at (its scheme and host, as behind a
// trusted proxy the proxy says), or the configured realm's. "null" and
// anything that is not scheme://host[:port] are another origin.
func (s *Service) SameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return false
	}
	scheme, host := originOf(r, s.cfg.TrustedProxies)
	if sameHost(u.Scheme, u.Host, scheme, host) {
		return true
	}
	if realm, err := url.Parse(s.cfg.Realm); err == nil && s.cfg.Realm != "" {
		return sameHost(u.Scheme, u.Host, realm.Scheme, realm.Host)
	}
	return false
}

// sameHost compares two scheme and host pairs as origins do: the scheme
// and host case-insensitively, a scheme's default port as no port.
func sameHost(scheme1, host1, scheme2, host2 string) bool {
	norm := func(scheme, host string) string {
		scheme, host = strings.ToLower(scheme), strings.ToLower(host)
		switch {
		case scheme == "http":
			host = strings.TrimSuffix(host, ":80")
		case scheme == "https":
			host = strings.TrimSuffix(host, ":443")
		}
		return scheme + "://" + host
	}
	return norm(scheme1, host1) == norm(scheme2, host2)
}

// TokenPath is where the token endpoint is served.
const TokenPath = "/token"

// Trace collects what authentication learned about a request, for the
// audit entry the server writes once the request is done.
type Trace struct {
	Actor    string
	ClientIP string
}

type traceKey struct{}

// WithTrace returns a context carrying a Trace that Authenticate fills.
func WithTrace(ctx context.Context) (context.Context, *Trace) {
	t := &Trace{}
	return context.WithValue(ctx, traceKey{}, t), t
}

func traceOf(ctx context.Context) *Trace {
	t, _ := ctx.Value(traceKey{}).(*Trace)
	return t
}
