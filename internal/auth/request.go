package auth

import (
	"context"
	"net"
	"net/http"
	"net/netip"
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
	scheme, host := "http", r.Host
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
	return scheme + "://" + host + TokenPath
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
