package httpdest

import (
	"strings"
	"unicode"

	"github.com/auditstream/auditstream/internal/destination"
)

// Config is an http destination's config, checked (see Type).
type Config struct {
	// URL is an http(s) URL, or GitLab's "$VARIABLE" form, which cannot be delivered to.
	URL string
	// Batched: the config has batch, so every request carries a JSON array.
	Batched bool
}

// Type is the http category (GitLab's): its config, secret, sender and form. The config rules
// are GitLab's JSON schema and validators:
//
//   - url (required): GitLab's pattern ^(https?://.+|\$[A-Za-z]+), at most 255 characters, no
//     whitespace or control characters, and an http(s) URL must parse and name a host.
//   - headers (optional): 1 to destination.MaxHeaders headers, {} meaning none; names are HTTP
//     tokens of at most 255 characters, unique ignoring case, not
//     destination.StreamingTokenHeader nor a header auditstream sets (webhook-*,
//     X-Gitlab-Audit-Event-Type, Host, ...); values are required, at most 255 characters, and
//     follow GitLab's pattern (empty, or visible ASCII and U+00A1-U+00FF with spaces and tabs
//     only inside); active defaults to true. Header values are secrets: they are kept apart
//     from the stored JSON (destination.Config.Headers) and never printed (destination.Header).
//
// The secret is the verification token sent as X-Gitlab-Event-Streaming-Token: optional (the
// caller generates one), at most destination.MaxSecretTokenLen characters, no control
// characters.
var Type = &destination.Type{
	Category: destination.CategoryHTTP,
	Title:    "HTTP endpoint",
	Fields: []destination.Field{
		{Key: "url", Label: "Destination URL", Kind: "url", Required: true, Help: "Each event is POSTed here as JSON, signed with Standard Webhooks headers."},
		{Key: "headers"}, // custom headers: the API's, not the form's
	},
	Parse: func(o *destination.Object) any {
		var cfg Config
		if s, ok := o.String("url", true); ok && o.URL(o.Field("url"), s, true) {
			o.SetString("url", s)
			cfg.URL = s
		}
		o.Headers("headers") // kept apart from the stored JSON; the sender gets them opened (Settings.Headers)
		cfg.Batched = o.Has("batch")
		return cfg
	},
	Secret: destination.Secret{
		Optional: true,
		Check: func(secret string) string {
			if strings.ContainsFunc(secret, unicode.IsControl) {
				return "must not contain control characters"
			}
			return ""
		},
		Label: "Verification token", Kind: "text",
		Help: "Sent in " + destination.StreamingTokenHeader + ". Leave empty to have one generated.",
	},
	New: func(cfg any, s destination.Settings, env destination.Env) (destination.Sender, error) {
		return newSender(cfg.(Config), s, env)
	},
	Where: func(cfg any) string { return destination.HostOf(cfg.(Config).URL) },
}
