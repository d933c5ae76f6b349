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
