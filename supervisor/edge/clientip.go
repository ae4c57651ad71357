package edge

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Prefixes is a set of address ranges (trusted proxies, the rate limit's allowlist).
type Prefixes []netip.Prefix

// ParsePrefixes reads IPs and CIDRs ("10.0.0.0/8", "192.0.2.7", "2001:db8::/32").
func ParsePrefixes(list []string) (Prefixes, error) {
	var out Prefixes
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an IP address nor a CIDR", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Contains reports whether a is in one of the ranges.
func (ps Prefixes) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr is the TCP peer of a request.
func peerAddr(r *http.Request) netip.Addr {
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

// clientAddr is the address of the client a request comes from: the TCP peer, unless
// the peer is a trusted proxy (a load balancer in front of the appliance) — then the
// right-most address in X-Forwarded-For that is not a trusted proxy. What a client
// writes into X-Forwarded-For itself is never believed.
func clientAddr(r *http.Request, trusted Prefixes) netip.Addr {
	peer := peerAddr(r)
	if !peer.IsValid() || !trusted.Contains(peer) {
		return peer
	}
	hops := forwardedHops(r.Header.Values("X-Forwarded-For"))
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			return peer // a malformed chain: the proxy itself is all we know
		}
		if a = a.Unmap(); !trusted.Contains(a) {
			return a
		}
	}
	return peer
}

func forwardedHops(values []string) []string {
	var hops []string
	for _, v := range values {
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hops = append(hops, h)
			}
		}
	}
	return hops
}

// forwardedProto is the scheme the client used: the TLS state of this connection, or
// what a trusted proxy in front says.
func forwardedProto(r *http.Request, trusted Prefixes) string {
	if trusted.Contains(peerAddr(r)) {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
			return p
		}
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

type clientKey struct{}

// request facts the edge works out once per request and carries in the context.
type requestInfo struct {
	client   netip.Addr
	proto    string
	listener string
	// body is the request body while it may still be sent to another replica.
	body *replayBody
}

func withInfo(r *http.Request, info *requestInfo) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), clientKey{}, info))
}

// ClientAddr is the real client address of a request the edge handles: the TCP peer,
// or what a trusted proxy in front says (for handlers inside the supervisor, such as
// the console, which get no X-Forwarded-For from the edge). Outside the edge it is the
// peer.
func ClientAddr(r *http.Request) netip.Addr { return infoOf(r).client }

// ForwardedProto is the scheme the client used ("https" or "http") as the edge worked
// it out (TLS on this connection, or a trusted proxy's X-Forwarded-Proto).
func ForwardedProto(r *http.Request) string {
	if info, ok := r.Context().Value(clientKey{}).(*requestInfo); ok {
		return info.proto
	}
	return forwardedProto(r, nil)
}

func infoOf(r *http.Request) *requestInfo {
	if info, ok := r.Context().Value(clientKey{}).(*requestInfo); ok {
		return info
	}
	return &requestInfo{client: peerAddr(r), proto: "http", listener: "?"}
}
