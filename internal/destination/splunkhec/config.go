package splunkhec

import (
	"strings"
	"unicode"

	"github.com/auditstream/auditstream/internal/destination"
)

// MaxTokenLen bounds a Splunk HEC token (a GUID has 36 characters).
const MaxTokenLen = 256

// Config is a splunk destination's config, checked (see Type).
type Config struct {
	URL                             string
	Index, Source, Sourcetype, Host string
	Ack                             bool
}

// Type is the splunk category (ours, Splunk HTTP Event Collector). The config: url (an http(s)
// URL: the HEC base URL), index, source, sourcetype, host (at most 255 printable characters
// each), ack (boolean: use indexer acknowledgement).
//
// The secret is the HEC token: required, at most MaxTokenLen characters, printable, no
// whitespace.
var Type = &destination.Type{
	Category: destination.CategorySplunk,
	Title:    "Splunk HTTP Event Collector",
	Fields: []destination.Field{
		{Key: "url", Label: "HEC URL", Kind: "url", Required: true, Help: "The collector's base URL, for example https://splunk.example.com:8088."},
		{Key: "index", Label: "Index", Kind: "text"},
		{Key: "source", Label: "Source", Kind: "text"},
		{Key: "sourcetype", Label: "Source type", Kind: "text", Help: "Default: gitlab:audit."},
		{Key: "host", Label: "Host", Kind: "text"},
		{Key: "ack", Label: "Indexer acknowledgement", Kind: "checkbox", Help: "An event counts as delivered once the indexers confirm it."},
	},
	Parse: parse,
	Secret: destination.Secret{
		MaxLen: MaxTokenLen,
		Check: func(secret string) string {
			if strings.ContainsFunc(secret, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) {
				return "must be the HEC token: printable characters without spaces"
			}
			return ""
		},
		Label: "HEC token", Kind: "password",
	},
	New: func(cfg any, s destination.Settings, env destination.Env) (destination.Sender, error) {
		return newHECSender(cfg.(Config), s, env)
	},
	Where: func(cfg any) string { return destination.HostOf(cfg.(Config).URL) },
}

func parse(o *destination.Object) any {
	var cfg Config
	if s, ok := o.String("url", true); ok && o.URL(o.Field("url"), s, false) {
		o.SetString("url", s)
		cfg.URL = s
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"index", &cfg.Index}, {"source", &cfg.Source}, {"sourcetype", &cfg.Sourcetype}, {"host", &cfg.Host}} {
		if s, ok := o.String(f.key, false); ok && o.Printable(o.Field(f.key), s, 255) {
			o.SetString(f.key, s)
			*f.dst = s
		}
	}
	if b, ok := o.Bool("ack"); ok {
		o.SetBool("ack", b)
		cfg.Ack = b
	}
	return cfg
}
