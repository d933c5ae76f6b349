// Package netguard keeps outbound connections of destinations away from addresses the operator
// has not allowed (design 6).
//
// The check runs when a connection is dialled, on the address actually dialled: after DNS, so a
// destination URL whose name resolves, or later re-resolves (DNS rebinding), to a loopback,
// private, link-local or cloud metadata address is refused. It runs in the dialer's Control
// function, after the socket is made and before connect, so a refused address never receives a
// packet.
//
// What is refused by default (Policy.Blocked): unspecified addresses and 0.0.0.0/8, loopback,
// private (RFC 1918, fc00::/7, the deprecated site-local fec0::/10), link-local (169.254.0.0/16,
// fe80::/10), carrier-grade NAT (100.64.0.0/10), multicast, the broadcast address, the rest of
// the reserved 240.0.0.0/4, IETF protocol assignments (192.0.0.0/24, where Oracle Cloud's legacy
// metadata service lives), benchmarking (198.18.0.0/15), local-use NAT64 (64:ff9b:1::/48) and the
// cloud metadata services (169.254.169.254, 169.254.170.2, fd00:ec2::254, 100.100.100.200,
// 168.63.129.16). IPv6 forms that carry an IPv4 address (IPv4-mapped ::ffff:a.b.c.d,
// IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::/96 and 6to4 2002::/16) are judged by that IPv4
// address.
//
// The documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) stay
// allowed: they are not routed anywhere and hold no internal service, so refusing them protects
// nothing, and examples and tests use them as "some public address". The benchmarking range
// 198.18.0.0/15 is refused although it is not routed either, because it is used in practice
// for internal lab networks and by fake-IP proxies.
package netguard

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Timeouts and limits of the client HTTPClient returns.
const (
	DialTimeout           = 10 * time.Second
	KeepAlive             = 30 * time.Second
	TLSHandshakeTimeout   = 10 * time.Second
	ResponseHeaderTimeout = 30 * time.Second
	IdleConnTimeout       = 90 * time.Second
	RequestTimeout        = 60 * time.Second // the whole request, body included
	MaxIdleConnsPerHost   = 64
	// MaxConnsPerHost bounds the connections to one receiver, however many destinations share
	// it (thousands of groups streaming to one collector): requests beyond wait for one,
	// instead of dialling a connection each and closing it after.
	MaxConnsPerHost = 64
	MaxIdleConns    = 1024
	// MaxResponseHeaderBytes bounds a response's headers, so that a hostile receiver cannot
	// make us buffer much.
	MaxResponseHeaderBytes = 1 << 20
)

// Policy says which addresses destinations may reach. The zero Policy refuses every address
// Blocked names.
type Policy struct {
	// AllowPrivate allows every address (--allow-private-destinations).
	AllowPrivate bool
	// Allow lists prefixes that are allowed even when Blocked would refuse them
	// (--destination-allow-cidrs).
	Allow []netip.Prefix
}

// ErrBlocked is wrapped by the error a refused dial returns (a *BlockedError, which says why).
// errors.Is(err, ErrBlocked) holds for the error of an http.Client request too.
var ErrBlocked = errors.New("destination address is not allowed")

// BlockedError is the error of a refused dial.
type BlockedError struct {
	Addr   netip.Addr // the address that was to be dialled
	Reason string     // what Blocked said
}

// Error tells a destination's owner why the address was refused and what would allow it.
func (e *BlockedError) Error() string {
	if !e.Addr.IsValid() {
		return "cannot check the address dialled: " + e.Reason
	}
	return fmt.Sprintf("address %s is %s: destinations may not reach it unless the operator allows it "+
		"(--allow-private-destinations or --destination-allow-cidrs)", e.Addr, e.Reason)
}

// Unwrap returns ErrBlocked.
func (e *BlockedError) Unwrap() error { return ErrBlocked }

// Special IPv4 and IPv6 ranges that netip's predicates do not name.
var (
	thisNetwork   = netip.MustParsePrefix("0.0.0.0/8")
	cgnat         = netip.MustParsePrefix("100.64.0.0/10")
	ietfProtocol  = netip.MustParsePrefix("192.0.0.0/24")
	benchmarking  = netip.MustParsePrefix("198.18.0.0/15")
	reserved4     = netip.MustParsePrefix("240.0.0.0/4")
	broadcast     = netip.MustParseAddr("255.255.255.255")
	siteLocal     = netip.MustParsePrefix("fec0::/10")
	nat64         = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local    = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour     = netip.MustParsePrefix("2002::/16")
	ipv4Compat    = netip.MustParsePrefix("::/96")
	metadataAddrs = []netip.Addr{
		netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle...
		netip.MustParseAddr("169.254.170.2"),   // AWS ECS task metadata
		netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
		netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
		netip.MustParseAddr("168.63.129.16"),   // Azure WireServer
	}
)

// Blocked reports why addr may not be dialled, or "" when it may: the operator allows every
// address (AllowPrivate), addr is in one of the Allow prefixes, or addr is none of the special
// addresses the package documentation lists. The reason is a phrase that completes "address X
// is ...", such as "loopback". An invalid address is blocked.
func (p Policy) Blocked(addr netip.Addr) string {
	if p.AllowPrivate {
		return ""
	}
	a := addr.WithZone("") // a zoned address matches no prefix
	if !a.IsValid() {
		return "not a valid IP address"
	}
	u := a.Unmap()
	for _, pre := range p.Allow {
		if pre.Contains(a) || pre.Contains(u) {
			return ""
		}
	}
	if v4, how, ok := embeddedIPv4(a); ok {
		if r := p.Blocked(v4); r != "" {
			return r + " (" + how + ")"
		}
		return ""
	}
	return special(u)
}

// embeddedIPv4 returns the IPv4 address an IPv6 address stands for, and in what way.
func embeddedIPv4(a netip.Addr) (netip.Addr, string, bool) {
	if !a.Is6() {
		return netip.Addr{}, "", false
	}
	b := a.As16()
	switch {
	case a.Is4In6():
		return a.Unmap(), "IPv4-mapped", true
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), "NAT64", true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), "6to4", true
	case ipv4Compat.Contains(a) && !a.IsUnspecified() && !a.IsLoopback():
		return netip.AddrFrom4([4]byte(b[12:16])), "IPv4-compatible", true
	}
	return netip.Addr{}, "", false
}

// special names the class of a (not IPv4-mapped) address that is refused by default.
func special(a netip.Addr) string {
	for _, m := range metadataAddrs {
		if a == m {
			return "a cloud metadata service"
		}
	}
	switch {
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a == broadcast:
		return "the broadcast address"
	case a.IsMulticast():
		return "multicast"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsPrivate():
		if a.Is4() {
			return "private (RFC 1918)"
		}
		return "private (unique local, fc00::/7)"
	case thisNetwork.Contains(a):
		return "in 0.0.0.0/8 (this network)"
	case cgnat.Contains(a):
		return "shared address space (carrier-grade NAT, 100.64.0.0/10)"
	case ietfProtocol.Contains(a):
		return "reserved for IETF protocol assignments (192.0.0.0/24)"
	case benchmarking.Contains(a):
		return "reserved for benchmarking (198.18.0.0/15)"
	case reserved4.Contains(a):
		return "reserved (240.0.0.0/4)"
	case siteLocal.Contains(a):
		return "site-local (fec0::/10)"
	case nat64Local.Contains(a):
		return "local-use NAT64 (64:ff9b:1::/48)"
	}
	return ""
}

// check refuses a dialled "ip:port" address that Blocked refuses.
func (p Policy) check(address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// The dialer always passes a resolved "ip:port"; anything else cannot be checked.
		return &BlockedError{Reason: "it is not an IP address and port (" + address + ")"}
	}
	if r := p.Blocked(ap.Addr()); r != "" {
		return &BlockedError{Addr: ap.Addr(), Reason: r}
	}
	return nil
}

// Dialer returns a dialer that refuses the addresses Blocked refuses. Its Control function
// checks the address actually dialled, after DNS, so a name that resolves to a blocked address
// (DNS rebinding included) is refused with a *BlockedError, before any packet is sent. It
// connects within DialTimeout and keeps connections alive.
func (p Policy) Dialer() *net.Dialer {
	return &net.Dialer{
		Timeout:   DialTimeout,
		KeepAlive: KeepAlive,
		Control: func(_, address string, _ syscall.RawConn) error {
			return p.check(address)
		},
	}
}

// DialContext dials address through Dialer. A connection to an address that only the Allow
// list lets through (one Blocked would refuse without it: an internal service the operator
// opened with --destination-allow-cidrs) is marked, so that AllowedByList can tell.
func (p Policy) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := p.Dialer().DialContext(ctx, network, address)
	if err != nil || len(p.Allow) == 0 || p.AllowPrivate {
		return c, err
	}
	if ap, perr := netip.ParseAddrPort(c.RemoteAddr().String()); perr == nil && (Policy{}).Blocked(ap.Addr()) != "" {
		return &listedConn{c}, nil
	}
	return c, nil
}

// listedConn is a connection to an address allowed only by Policy.Allow.
type listedConn struct{ net.Conn }

// AllowedByList reports whether c (or the connection under a *tls.Conn) was dialled by
// DialContext to an address that only the policy's Allow list lets through. Senders show
// nothing of what such an address answers to a destination's owners: it is an internal
// service, and its error pages are not theirs to read.
func AllowedByList(c net.Conn) bool {
	for c != nil {
		switch t := c.(type) {
		case *listedConn:
			return true
		case interface{ NetConn() net.Conn }: // *tls.Conn
			c = t.NetConn()
		default:
			return false
		}
	}
	return false
}

// HTTPClient returns an HTTP client for destinations to share: it dials through DialContext, so it
// never connects to an address the policy refuses, verifies TLS certificates (TLS 1.2 at
// least), speaks HTTP/2 when the server does, keeps up to MaxIdleConnsPerHost idle connections
// per host, and bounds every phase (DialTimeout, TLSHandshakeTimeout, ResponseHeaderTimeout,
// and RequestTimeout for the whole request).
//
// It uses no proxy, whatever HTTP_PROXY and HTTPS_PROXY say: through a proxy, the client would
// dial only the proxy and the proxy would reach the destination, bypassing the guard.
//
// It never follows a redirect: Do returns the 3xx response itself, for the caller to treat as
// a failure. A redirect could otherwise lead to an address the guard refuses only after a
// request was sent to it (it would be refused too, but a 3xx is a configuration problem the
// destination's owner should see and fix).
func (p Policy) HTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            p.DialContext,
			TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2:      true,
			MaxIdleConns:           MaxIdleConns,
			MaxIdleConnsPerHost:    MaxIdleConnsPerHost,
			MaxConnsPerHost:        MaxConnsPerHost,
			IdleConnTimeout:        IdleConnTimeout,
			TLSHandshakeTimeout:    TLSHandshakeTimeout,
			ResponseHeaderTimeout:  ResponseHeaderTimeout,
			ExpectContinueTimeout:  time.Second,
			MaxResponseHeaderBytes: MaxResponseHeaderBytes,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       RequestTimeout,
	}
}

// ParsePrefixes parses a comma-separated list of CIDR prefixes or single IP addresses (for
// --destination-allow-cidrs): "10.1.0.0/16, 192.168.1.5, fd00::/8". Spaces around items and
// empty items are ignored; an empty list gives nil. Prefixes are masked (10.1.2.3/16 means
// 10.1.0.0/16). Zoned addresses are not accepted.
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.Contains(item, "/") {
			pre, err := netip.ParsePrefix(item)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR prefix such as 10.0.0.0/8 or fd00::/8", item)
			}
			out = append(out, pre.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q is not an IP address or a CIDR prefix such as 10.0.0.0/8", item)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
