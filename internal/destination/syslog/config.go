package syslog

import (
	"net"
	"strconv"
	"strings"
	"unicode"

	"github.com/auditstream/auditstream/internal/destination"
)

// Category is the syslog category's name in the API and the store.
const Category = "syslog"

// Defaults and limits of a config.
const (
	// DefaultFacility is RFC 5424's facility 13, "log audit".
	DefaultFacility = 13
	// DefaultAppName is the APP-NAME of the messages.
	DefaultAppName = "gitlab"
	// MaxCACertificateLen bounds config.caCertificate (PEM).
	MaxCACertificateLen = 32 << 10
	// MaxBatchBytes bounds config.batch.maxBytes: what one Send writes.
	MaxBatchBytes = 4 << 20
)

// Config is a syslog destination's config, checked (see Type).
type Config struct {
	// Address is the collector's host:port.
	Address string
	// TLS: RFC 5425 (syslog over TLS); otherwise RFC 6587's TCP, both with octet-counting.
	TLS           bool
	CACertificate string
	Facility      int
	// Hostname and AppName are the messages' HOSTNAME and APP-NAME ("-" for Hostname: none).
	Hostname, AppName string
}

// Type is the syslog category (ours): RFC 5424 messages over TCP with octet-counting framing
// (RFC 6587), or over TLS (RFC 5425). The config:
//
//   - address (required): the collector's host:port.
//   - tls (boolean, default false); caCertificate (PEM of a private CA, with tls).
//   - facility (0 to 23, default 13, "log audit"), hostname (the HOSTNAME field, at most 255
//     printable ASCII characters without spaces; "-" when missing), appName (at most 48 of
//     them, default gitlab).
//
// There is no secret: a collector that authenticates its senders does it with TLS.
var Type = &destination.Type{
	Category: Category,
	Title:    "Syslog (RFC 5424)",
	Fields: []destination.Field{
		{Key: "address", Label: "Collector address", Kind: "text", Required: true, Help: "host:port of the syslog collector's TCP or TLS listener, for example siem.example.com:6514."},
		{Key: "tls", Label: "TLS", Kind: "checkbox", Help: "RFC 5425 (usually port 6514); otherwise plain TCP (usually port 514)."},
		{Key: "hostname", Label: "Host name", Kind: "text", Help: "The HOSTNAME of the messages, for example gitlab.example.com."},
		{Key: "appName", Label: "Application name", Kind: "text", Help: "Default: " + DefaultAppName + "."},
		{Key: "facility"}, // an integer: the API's, not the form's
		{Key: "caCertificate"},
	},
	MaxBatchBytes: MaxBatchBytes,
	Parse:         parse,
	Secret: destination.Secret{
		Optional: true,
		Check: func(string) string {
			return "must be empty: a syslog destination has no secret (a collector that authenticates senders does it with TLS)"
		},
		Label: "Secret (none)", Kind: "password", Help: "Leave empty.",
	},
	New: func(cfg any, s destination.Settings, env destination.Env) (destination.Sender, error) {
		return newSender(cfg.(Config), s, env, options{})
	},
	Where: func(cfg any) string {
		c := cfg.(Config)
		if c.TLS {
			return "syslog+tls://" + c.Address
		}
		return "syslog://" + c.Address
	},
}

func parse(o *destination.Object) any {
	cfg := Config{Facility: DefaultFacility, AppName: DefaultAppName, Hostname: "-"}
	if s, ok := o.String("address", true); ok {
		f := o.Field("address")
		host, port, err := net.SplitHostPort(s)
		n, perr := strconv.Atoi(port)
		switch {
		case !o.Length(f, s, 1, 255):
		case err != nil || host == "" || perr != nil || n < 1 || n > 65535:
			o.Problem(f, destination.CodeInvalid, 0, "must be a host:port with a port from 1 to 65535")
		case strings.ContainsFunc(host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' || r == '@' }):
			o.Problem(f, destination.CodeInvalid, 0, "must be a host name or IP address and a port")
		default:
			cfg.Address = net.JoinHostPort(host, port)
			o.SetString("address", cfg.Address)
		}
	}
	cfg.TLS, cfg.CACertificate = o.TLS(MaxCACertificateLen)
	cfg.Facility = int(o.Int("facility", 0, 23, DefaultFacility))
	o.SetInt("facility", int64(cfg.Facility))
	for _, f := range []struct {
		key string
		dst *string
		max int
	}{{"hostname", &cfg.Hostname, 255}, {"appName", &cfg.AppName, 48}} {
		s, ok := o.String(f.key, false)
		if !ok {
			continue
		}
		// RFC 5424: PRINTUSASCII (%d33-126).
		if !o.Length(o.Field(f.key), s, 1, f.max) {
			continue
		}
		if strings.ContainsFunc(s, func(r rune) bool { return r < 33 || r > 126 }) {
			o.Problem(o.Field(f.key), destination.CodeInvalid, 0, "may only contain visible ASCII characters, without spaces (RFC 5424)")
			continue
		}
		*f.dst = s
	}
	if cfg.Hostname != "-" {
		o.SetString("hostname", cfg.Hostname)
	}
	o.SetString("appName", cfg.AppName)
	return cfg
}
