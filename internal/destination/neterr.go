package destination

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"syscall"
)

// NetCause says in a few words why a request got no response, for the common network and TLS
// failures every sender meets; "" for anything else. peer names the other side ("the server",
// "the store"). Senders check what they can say better first (their timeouts, hints of their
// own), then ask NetCause. It never quotes the URL.
func NetCause(err error, peer string) string {
	var (
		dns  *net.DNSError
		op   *net.OpError
		ne   net.Error
		ua   x509.UnknownAuthorityError
		host x509.HostnameError
		cve  *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &dns):
		switch {
		case dns.IsNotFound:
			return "cannot resolve the host " + dns.Name + ": no such host"
		case dns.IsTimeout:
			return "cannot resolve the host " + dns.Name + ": DNS timeout"
		}
		return "cannot resolve the host " + dns.Name
	case errors.As(err, &op) && op.Op == "dial" && op.Timeout():
		return "timeout connecting to " + peer
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by " + peer
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.As(err, &ua):
		return "TLS certificate signed by an unknown authority"
	case errors.As(err, &host):
		return "TLS certificate is not valid for " + host.Host
	case errors.As(err, &cve):
		return "TLS certificate verification failed"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return peer + " closed the connection without a complete response"
	}
	return ""
}

// Unwrapped is the error inside a *url.Error (what net/http returns), or err itself.
func Unwrapped(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// URLSecrets returns what of u must not appear in a message: the password, the query and its
// values (webhook and HEC URLs often carry a token there).
func URLSecrets(u *url.URL) []string {
	var out []string
	if p, ok := u.User.Password(); ok {
		out = append(out, p, url.QueryEscape(p))
	}
	if u.RawQuery != "" {
		out = append(out, u.RawQuery)
		if q, err := url.ParseQuery(u.RawQuery); err == nil {
			for _, vs := range q {
				for _, v := range vs {
					out = append(out, v, url.QueryEscape(v))
				}
			}
		}
	}
	return out
}
