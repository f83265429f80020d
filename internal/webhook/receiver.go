package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrPrivateReceiver means a webhook names, or resolved to, an address
// inside the server's own network while private receivers are not
// allowed (Options.AllowPrivate, webhooks.allow_private).
//
// Any project administrator may add a webhook, and berth POSTs to it
// from inside the deployment: without this a project admin could make
// berth reach its own loopback services, a cloud metadata endpoint
// (169.254.169.254) or anything on the internal network (SSRF).
var ErrPrivateReceiver = errors.New("private receiver address")

// sharedAddressSpace is RFC 6598's carrier-grade NAT range, internal on
// every network that uses it; netip.Addr.IsPrivate leaves it out.
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// thisNetwork is RFC 1122's "this network" (0.0.0.0/8): Linux connects
// 0.0.0.0 to the local host.
var thisNetwork = netip.MustParsePrefix("0.0.0.0/8")

// privateAddr reports whether ip is an address of the server's own host
// or network.
func privateAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() ||
		sharedAddressSpace.Contains(ip) || thisNetwork.Contains(ip)
}

func privateError(what string) error {
	return fmt.Errorf("%w: %s is a loopback, private or link-local address (webhooks.allow_private is off)",
		ErrPrivateReceiver, what)
}

// CheckReceiver refuses, when private receivers are not allowed, a URL
// whose host is such an address written out, or localhost. Other names
// are resolved at each delivery and checked then (a name may change its
// address after this check). Errors wrap ErrInvalid and
// ErrPrivateReceiver.
func (d *Dispatcher) CheckReceiver(raw string) error {
	if err := ValidateURL(raw); err != nil {
		return err
	}
	if d.allowPrivate {
		return nil
	}
	u, _ := url.Parse(raw)
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return fmt.Errorf("%w: %w", ErrInvalid, privateError(host))
	}
	if ip, err := netip.ParseAddr(host); err == nil && privateAddr(ip) {
		return fmt.Errorf("%w: %w", ErrInvalid, privateError(ip.String()))
	}
	return nil
}

// receiverTransport is the transport deliveries go through. Without
// allowPrivate every connection is checked after name resolution, on the
// address actually dialled (so a name that resolves to an internal
// address, or is rebound to one after CheckReceiver, is refused too),
// except connections to the HTTP proxy the operator configured: the
// proxy, not berth, then reaches the receiver.
func receiverTransport(timeout time.Duration, allowPrivate bool, proxy func(*http.Request) (*url.URL, error)) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = timeout
	tr.MaxIdleConnsPerHost = 2
	tr.Proxy = proxy
	if allowPrivate {
		return tr
	}
	var proxies sync.Map // host:port of proxies the operator configured
	tr.Proxy = func(r *http.Request) (*url.URL, error) {
		u, err := proxy(r)
		if u != nil {
			proxies.Store(proxyAddr(u), true)
		}
		return u, err
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	guarded := *dialer
	guarded.Control = func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return privateError(address)
		}
		if privateAddr(ap.Addr()) {
			return privateError(ap.Addr().Unmap().String())
		}
		return nil
	}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if _, ok := proxies.Load(addr); ok {
			return dialer.DialContext(ctx, network, addr)
		}
		return guarded.DialContext(ctx, network, addr)
	}
	return tr
}

// proxyAddr is the host:port the transport dials for proxy u.
func proxyAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "socks5", "socks5h":
			port = "1080"
		default:
			port = "80"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}
