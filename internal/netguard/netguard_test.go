package netguard_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/netguard"
)

func TestBlocked(t *testing.T) {
	tests := []struct {
		addr   string
		reason string // a substring of the reason; "" when allowed
	}{
		// Public addresses.
		{"93.184.216.34", ""},
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"2606:4700::1", ""},
		{"2a00:1450:4001:80b::200e", ""},
		{"::ffff:93.184.216.34", ""},
		{"64:ff9b::93.184.216.34", ""}, // NAT64 of a public address
		{"2002:5db8:d822::1", ""},      // 6to4 of 93.184.216.34
		// Documentation ranges stay allowed (see the package documentation).
		{"192.0.2.1", ""},
		{"198.51.100.7", ""},
		{"203.0.113.9", ""},
		{"2001:db8::1", ""},
		// Just outside the blocked ranges.
		{"100.63.255.255", ""},
		{"100.128.0.0", ""},
		{"172.15.255.255", ""},
		{"172.32.0.0", ""},
		{"169.253.255.255", ""},
		{"1.0.0.0", ""},
		{"223.255.255.255", ""},
		{"198.17.255.255", ""},
		{"198.20.0.0", ""},
		{"192.0.1.255", ""},

		// Unspecified and this network.
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"0.1.2.3", "0.0.0.0/8"},
		{"::ffff:0.0.0.0", "unspecified (IPv4-mapped)"},
		// Loopback.
		{"127.0.0.1", "loopback"},
		{"127.255.0.9", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback (IPv4-mapped)"},
		{"::127.0.0.1", "loopback (IPv4-compatible)"},
		{"64:ff9b::127.0.0.1", "loopback (NAT64)"},
		{"2002:7f00:1::1", "loopback (6to4)"},
		// Private.
		{"10.0.0.1", "private (RFC 1918)"},
		{"172.16.0.1", "private (RFC 1918)"},
		{"172.31.255.254", "private (RFC 1918)"},
		{"192.168.1.1", "private (RFC 1918)"},
		{"::ffff:10.1.2.3", "private (RFC 1918) (IPv4-mapped)"},
		{"::ffff:192.168.0.1", "private"},
		{"fc00::1", "unique local"},
		{"fd12:3456::1", "unique local"},
		{"fec0::1", "site-local"},
		{"64:ff9b:1::a00:1", "local-use NAT64"},
		// Link-local.
		{"169.254.1.1", "link-local"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"::ffff:169.254.10.10", "link-local (IPv4-mapped)"},
		// Carrier-grade NAT.
		{"100.64.0.1", "carrier-grade NAT"},
		{"100.127.255.254", "carrier-grade NAT"},
		{"::ffff:100.64.0.1", "carrier-grade NAT"},
		// Multicast.
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"ff02::1", "multicast"},
		{"ff0e::1", "multicast"},
		{"::ffff:224.0.0.251", "multicast (IPv4-mapped)"},
		// Broadcast and reserved.
		{"255.255.255.255", "broadcast"},
		{"::ffff:255.255.255.255", "broadcast"},
		{"240.0.0.1", "reserved (240.0.0.0/4)"},
		// IETF protocol assignments and benchmarking.
		{"192.0.0.192", "IETF protocol assignments"},
		{"198.18.0.1", "benchmarking"},
		{"198.19.255.255", "benchmarking"},
		// Cloud metadata, before the class they are in.
		{"169.254.169.254", "cloud metadata"},
		{"169.254.170.2", "cloud metadata"},
		{"fd00:ec2::254", "cloud metadata"},
		{"100.100.100.200", "cloud metadata"},
		{"168.63.129.16", "cloud metadata"},
		{"::ffff:169.254.169.254", "cloud metadata service (IPv4-mapped)"},
		{"64:ff9b::169.254.169.254", "cloud metadata service (NAT64)"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tt.addr)
			got := netguard.Policy{}.Blocked(a)
			if tt.reason == "" {
				require.Empty(t, got)
			} else {
				require.Contains(t, got, tt.reason)
			}
			// AllowPrivate allows everything.
			require.Empty(t, netguard.Policy{AllowPrivate: true}.Blocked(a))
		})
	}
	require.Equal(t, "not a valid IP address", netguard.Policy{}.Blocked(netip.Addr{}))
}

func TestBlockedAllow(t *testing.T) {
	allow, err := netguard.ParsePrefixes("10.1.0.0/16, 127.0.0.1,fd00:1::/32, 169.254.169.254")
	require.NoError(t, err)
	p := netguard.Policy{Allow: allow}
	for _, s := range []string{"10.1.2.3", "::ffff:10.1.2.3", "127.0.0.1", "::ffff:127.0.0.1", "fd00:1::5", "169.254.169.254", "64:ff9b::10.1.0.1"} {
		require.Empty(t, p.Blocked(netip.MustParseAddr(s)), s)
	}
	for _, s := range []string{"10.2.0.1", "127.0.0.2", "::1", "fd00:2::5", "169.254.169.253", "192.168.0.1"} {
		require.NotEmpty(t, p.Blocked(netip.MustParseAddr(s)), s)
	}
	// A mapped prefix allows the plain IPv4 addresses in it too.
	mapped := netguard.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}}
	require.Empty(t, mapped.Blocked(netip.MustParseAddr("::ffff:10.9.9.9")))
}

func TestParsePrefixes(t *testing.T) {
	got, err := netguard.ParsePrefixes(" 10.1.2.3/16 , , 192.168.1.5,fd00::/8,::1 ")
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{
		netip.MustParsePrefix("10.1.0.0/16"),
		netip.MustParsePrefix("192.168.1.5/32"),
		netip.MustParsePrefix("fd00::/8"),
		netip.MustParsePrefix("::1/128"),
	}, got)

	got, err = netguard.ParsePrefixes("")
	require.NoError(t, err)
	require.Nil(t, got)

	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0", "fe80::1%eth0", "1.2.3.4/x", "10.0.0.0/8,nope"} {
		_, err := netguard.ParsePrefixes(bad)
		require.Error(t, err, bad)
	}
}

// listen starts a TCP listener on 127.0.0.1 that accepts and closes connections, counting them.
func listen(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			_ = c.Close()
		}
	}()
	return l.Addr().String(), &n
}

func TestDialer(t *testing.T) {
	addr, accepted := listen(t)
	ctx := context.Background()

	_, err := netguard.Policy{}.Dialer().DialContext(ctx, "tcp", addr)
	require.ErrorIs(t, err, netguard.ErrBlocked)
	var be *netguard.BlockedError
	require.ErrorAs(t, err, &be)
	require.Equal(t, "127.0.0.1", be.Addr.String())
	require.Contains(t, be.Error(), "address 127.0.0.1 is loopback: destinations may not reach it unless the operator allows it (--allow-private-destinations or --destination-allow-cidrs)")

	for _, p := range []netguard.Policy{
		{AllowPrivate: true},
		{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
	} {
		c, err := p.Dialer().DialContext(ctx, "tcp", addr)
		require.NoError(t, err)
		_ = c.Close()
	}
	require.Eventually(t, func() bool { return accepted.Load() == 2 }, 5*time.Second, 10*time.Millisecond)

	// A name is checked on what it resolves to.
	_, port, _ := net.SplitHostPort(addr)
	_, err = netguard.Policy{}.Dialer().DialContext(ctx, "tcp", net.JoinHostPort("localhost", port))
	require.ErrorIs(t, err, netguard.ErrBlocked)
	require.Equal(t, int32(2), accepted.Load(), "a refused dial must not connect")
}

// TestDialerRefusesBeforeConnect dials addresses that are not reachable from here: the guard
// must refuse them at once, before connect, so the error is ErrBlocked and not a timeout.
func TestDialerRefusesBeforeConnect(t *testing.T) {
	d := netguard.Policy{}.Dialer()
	for _, addr := range []string{"10.0.0.1:80", "169.254.169.254:80", "[::1]:80", "[fd00:ec2::254]:80", "0.0.0.0:80", "[::ffff:127.0.0.1]:80"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		start := time.Now()
		_, err := d.DialContext(ctx, "tcp", addr)
		cancel()
		require.ErrorIs(t, err, netguard.ErrBlocked, addr)
		require.Less(t, time.Since(start), time.Second, addr)
	}
	_, err := d.DialContext(context.Background(), "tcp", "169.254.169.254:80")
	require.ErrorContains(t, err, "address 169.254.169.254 is a cloud metadata service")
}

func TestHTTPClientBlocked(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()

	resp, err := netguard.Policy{}.HTTPClient().Get(srv.URL + "/?token=secret")
	if resp != nil {
		_ = resp.Body.Close()
	}
	require.ErrorIs(t, err, netguard.ErrBlocked)
	var be *netguard.BlockedError
	require.ErrorAs(t, err, &be)
	require.Zero(t, hits.Load())

	c := netguard.Policy{AllowPrivate: true}.HTTPClient()
	resp, err = c.Get(srv.URL)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, int32(1), hits.Load())
}

func TestHTTPClientDoesNotFollowRedirects(t *testing.T) {
	var targetHits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { targetHits.Add(1) }))
	defer target.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	defer redirect.Close()

	resp, err := netguard.Policy{AllowPrivate: true}.HTTPClient().Post(redirect.URL, "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	require.Equal(t, target.URL, resp.Header.Get("Location"))
	require.Zero(t, targetHits.Load())
}

func TestHTTPClientSettings(t *testing.T) {
	c := netguard.Policy{}.HTTPClient()
	require.Equal(t, 60*time.Second, c.Timeout)
	tr, ok := c.Transport.(*http.Transport)
	require.True(t, ok)
	require.Nil(t, tr.Proxy, "a proxy would bypass the guard")
	require.Equal(t, 64, tr.MaxIdleConnsPerHost)
	require.Equal(t, 90*time.Second, tr.IdleConnTimeout)
	require.Equal(t, 10*time.Second, tr.TLSHandshakeTimeout)
	require.Equal(t, 30*time.Second, tr.ResponseHeaderTimeout)
	require.True(t, tr.ForceAttemptHTTP2)
	require.False(t, tr.TLSClientConfig.InsecureSkipVerify)
	require.GreaterOrEqual(t, tr.TLSClientConfig.MinVersion, uint16(0x0303)) // TLS 1.2
}

func TestBlockedErrorIs(t *testing.T) {
	err := error(&netguard.BlockedError{Addr: netip.MustParseAddr("10.0.0.1"), Reason: "private (RFC 1918)"})
	require.True(t, errors.Is(err, netguard.ErrBlocked))
	require.Equal(t, "address 10.0.0.1 is private (RFC 1918): destinations may not reach it unless the operator allows it (--allow-private-destinations or --destination-allow-cidrs)", err.Error())
}

// A connection to an address that only the Allow list lets through is marked, so that senders
// can keep what it answers from a destination's owners; one allowed by AllowPrivate, or to a
// public address, is not.
func TestAllowedByList(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	for _, c := range []struct {
		p    netguard.Policy
		want bool
	}{
		{netguard.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, true},
		{netguard.Policy{AllowPrivate: true}, false},
		{netguard.Policy{AllowPrivate: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, false},
	} {
		conn, err := c.p.DialContext(t.Context(), "tcp", ln.Addr().String())
		require.NoError(t, err)
		require.Equal(t, c.want, netguard.AllowedByList(conn), "%+v", c.p)
		require.Equal(t, c.want, netguard.AllowedByList(tls.Client(conn, &tls.Config{})), "under TLS: %+v", c.p)
		_ = conn.Close()
	}
	_, err = netguard.Policy{}.DialContext(t.Context(), "tcp", ln.Addr().String())
	require.ErrorIs(t, err, netguard.ErrBlocked)
	require.False(t, netguard.AllowedByList(nil))
}
