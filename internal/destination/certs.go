package destination

import (
	"crypto/x509"
	"encoding/pem"
	"strings"
)

// ValidCertificates reports whether s is one or more PEM certificates and nothing else (a
// private CA a category dials with TLS).
func ValidCertificates(s string) bool {
	rest := []byte(strings.TrimSpace(s))
	n := 0
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil || block.Type != "CERTIFICATE" {
			return false
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return false
		}
		rest = []byte(strings.TrimSpace(string(rest)))
		n++
	}
	return n > 0
}

// TLS reads the keys "tls" (default false) and "caCertificate" (PEM of a private CA, at most
// maxCA bytes, only with tls) of a category that dials with TLS, and writes them back.
func (o *Object) TLS(maxCA int) (tls bool, ca string) {
	tls, _ = o.Bool("tls")
	o.SetBool("tls", tls)
	s, ok := o.String("caCertificate", false)
	if !ok {
		return tls, ""
	}
	f := o.Field("caCertificate")
	switch {
	case !tls:
		o.Problem(f, CodeInvalid, 0, "is only used with tls: true")
	case !o.Length(f, s, 1, maxCA):
	case !ValidCertificates(s):
		o.Problem(f, CodeInvalid, 0, "must be one or more certificates in PEM form (-----BEGIN CERTIFICATE-----)")
	default:
		o.SetString("caCertificate", s)
		return tls, s
	}
	return tls, ""
}
