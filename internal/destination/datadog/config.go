package datadog

import (
	"regexp"
	"slices"
	"strings"

	"github.com/auditstream/auditstream/internal/destination"
)

// Category is the datadog category's name in the API and the store.
const Category = "datadog"

// Sites are Datadog's sites (https://docs.datadoghq.com/getting_started/site/): the logs intake
// of site S is https://http-intake.logs.S/api/v2/logs.
var Sites = []string{"datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com", "datadoghq.eu", "ap1.datadoghq.com", "ap2.datadoghq.com", "ddog-gov.com"}

// Datadog's documented limits of the logs intake API (https://docs.datadoghq.com/api/latest/logs/#send-logs).
const (
	// MaxEntries is the most log entries one request may carry.
	MaxEntries = 1000
	// MaxPayloadBytes bounds a request's uncompressed body.
	MaxPayloadBytes = 5 << 20
	// MaxEntryBytes bounds one log entry; a larger one is truncated by Datadog, so the sender
	// refuses it, permanent.
	MaxEntryBytes = 1 << 20
)

// Defaults of a config.
const (
	DefaultSite     = "datadoghq.com"
	DefaultSource   = "gitlab"
	DefaultService  = "gitlab-audit"
	MaxTagsLen      = 1000
	MaxAttributeLen = 255
)

// apiKeyPattern is a Datadog API key: 32 hexadecimal characters.
var apiKeyPattern = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)

// Config is a datadog destination's config, checked (see Type).
type Config struct {
	// Site is one of Sites; URL, when set, replaces the site's intake (a proxy, Observability
	// Pipelines).
	Site, URL string
	// Source, Service, Tags and Hostname are the entries' ddsource, service, ddtags, hostname.
	Source, Service, Tags, Hostname string
}

// Type is the datadog category (ours): Datadog's logs intake API. The config:
//
//   - site (optional, default datadoghq.com): one of Sites. url (optional): an http(s) URL that
//     takes the intake's requests instead (a proxy, Datadog's Observability Pipelines); not with
//     site.
//   - ddsource (default gitlab), service (default gitlab-audit), hostname: at most 255
//     printable characters each; ddtags: Datadog's "key:value,key:value", at most 1000.
//   - batch: maxEvents at most MaxEntries, maxBytes at most MaxPayloadBytes.
//
// The secret is the Datadog API key: 32 hexadecimal characters.
var Type = &destination.Type{
	Category: Category,
	Title:    "Datadog Logs",
	Fields: []destination.Field{
		{Key: "site", Label: "Datadog site", Kind: "text", Help: "datadoghq.com (the default), us3.datadoghq.com, us5.datadoghq.com, datadoghq.eu, ap1.datadoghq.com, ap2.datadoghq.com or ddog-gov.com."},
		{Key: "service", Label: "Service", Kind: "text", Help: "Default: " + DefaultService + "."},
		{Key: "ddsource", Label: "Source", Kind: "text", Help: "Default: " + DefaultSource + "."},
		{Key: "ddtags", Label: "Tags", Kind: "text", Help: "key:value pairs separated by commas, for example env:prod,team:security."},
		{Key: "hostname", Label: "Host name", Kind: "text"},
		{Key: "url", Label: "Intake URL", Kind: "url", Help: "Only for a proxy or Observability Pipelines: replaces the site's intake."},
	},
	MaxBatchBytes:  MaxPayloadBytes,
	MaxBatchEvents: MaxEntries,
	Parse:          parse,
	Secret: destination.Secret{
		Check: func(secret string) string {
			if !apiKeyPattern.MatchString(secret) {
				return "must be a Datadog API key: 32 hexadecimal characters"
			}
			return ""
		},
		Label: "API key", Kind: "password",
		Help: "An API key of the organization (Organization Settings, API Keys); not an application key.",
	},
	New: func(cfg any, s destination.Settings, env destination.Env) (destination.Sender, error) {
		return newSender(cfg.(Config), s, env)
	},
	Where: func(cfg any) string {
		c := cfg.(Config)
		if c.URL != "" {
			return destination.HostOf(c.URL)
		}
		return c.Site
	},
}

func parse(o *destination.Object) any {
	cfg := Config{Site: DefaultSite, Source: DefaultSource, Service: DefaultService}
	site, hasSite := o.String("site", false)
	if hasSite {
		if s := strings.ToLower(strings.TrimSpace(site)); slices.Contains(Sites, s) {
			cfg.Site = s
		} else {
			o.Problem(o.Field("site"), destination.CodeInvalid, 0, "must be one of "+strings.Join(Sites, ", "))
		}
	}
	if s, ok := o.String("url", false); ok {
		f := o.Field("url")
		switch {
		case hasSite:
			o.Problem(f, destination.CodeInvalid, 0, "replaces the site's intake: give either site or url")
		case o.URL(f, s, false):
			o.SetString("url", s)
			cfg.URL, cfg.Site = s, ""
		}
	}
	if cfg.Site != "" {
		o.SetString("site", cfg.Site)
	}
	for _, f := range []struct {
		key string
		dst *string
		max int
	}{{"ddsource", &cfg.Source, MaxAttributeLen}, {"service", &cfg.Service, MaxAttributeLen}, {"hostname", &cfg.Hostname, MaxAttributeLen}, {"ddtags", &cfg.Tags, MaxTagsLen}} {
		if s, ok := o.String(f.key, false); ok && o.Printable(o.Field(f.key), s, f.max) {
			*f.dst = s
		}
		if *f.dst != "" {
			o.SetString(f.key, *f.dst)
		}
	}
	return cfg
}
