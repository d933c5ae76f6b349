package gcsdest

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/auditstream/auditstream/internal/destination"
)

// MaxKeyFileLen bounds a Google service-account JSON key file (about 2.3 KB with a 2048-bit
// key, 4 KB with a 4096-bit one, so GitLab's 4096 would be too tight).
const MaxKeyFileLen = 16 << 10

// bucketPattern is Google's bucket naming rule.
var bucketPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*[a-z0-9]$`)

// Config is a gcs destination's config, checked (see Type).
type Config struct {
	BucketName, Prefix string
	Batched            bool // config.batch: one object per batch
}

// Type is the gcs category (ours, Google Cloud Storage). The config: bucketName (3 to 63,
// ^[a-z0-9][a-z0-9_.-]*[a-z0-9]$, not starting with "goog"), prefix (at most 512 characters,
// no control characters, no leading "/", no ".." path segment).
//
// The secret is the whole service-account JSON key file: an object with "type":
// "service_account", a client_email and a private_key that is an unencrypted RSA key in PEM
// form; at most MaxKeyFileLen characters.
var Type = &destination.Type{
	Category:         destination.CategoryGCS,
	Title:            "Google Cloud Storage",
	KeepsCheckpoints: true, // checkpoints/<size>-<root>.checkpoint beside the batches
	Fields: []destination.Field{
		{Key: "bucketName", Label: "Bucket name", Kind: "text", Required: true},
		{Key: "prefix", Label: "Object name prefix", Kind: "text", Help: "Optional, for example gitlab/."},
	},
	Parse: parse,
	Secret: destination.Secret{
		MaxLen: MaxKeyFileLen,
		Check:  checkKeyFile,
		Label:  "Service account key file (JSON)", Kind: "textarea",
		Help: "The whole JSON key file. The account needs storage.objects.create on the bucket.",
	},
	New: func(cfg any, s destination.Settings, env destination.Env) (destination.Sender, error) {
		return newDefault(cfg.(Config), s, env)
	},
	Where: func(cfg any) string { return "gs://" + cfg.(Config).BucketName },
}

func parse(o *destination.Object) any {
	var cfg Config
	if s, ok := o.String("bucketName", true); ok {
		f := o.Field("bucketName")
		if o.Length(f, s, 3, 63) && o.Match(f, s, bucketPattern, "must start and end with a lower-case letter or digit and contain only lower-case letters, digits, -, _ and .") {
			if strings.HasPrefix(s, "goog") {
				o.Problem(f, destination.CodeInvalid, 0, `must not start with "goog"`)
			} else {
				o.SetString("bucketName", s)
				cfg.BucketName = s
			}
		}
	}
	if s, ok := o.String("prefix", false); ok {
		f := o.Field("prefix")
		switch {
		case !o.Length(f, s, 1, 512):
		case strings.ContainsFunc(s, unicode.IsControl):
			o.Problem(f, destination.CodeInvalid, 0, "must not contain control characters")
		case strings.HasPrefix(s, "/"):
			o.Problem(f, destination.CodeInvalid, 0, `must not start with "/"`)
		case slices.Contains(strings.Split(s, "/"), ".."):
			o.Problem(f, destination.CodeInvalid, 0, `must not contain a ".." path segment`)
		default:
			o.SetString("prefix", s)
			cfg.Prefix = s
		}
	}
	cfg.Batched = o.Has("batch")
	return cfg
}

// checkKeyFile returns why s is not a Google service-account JSON key file, or "". The reason
// never quotes s.
func checkKeyFile(s string) string {
	const want = "must be the service account's whole JSON key file"
	if strings.HasPrefix(strings.TrimSpace(s), "-----BEGIN") {
		return want + ", not only its private key"
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &fields); err != nil || fields == nil {
		return want
	}
	str := func(key string) (string, bool) {
		var v string
		raw, ok := fields[key]
		return v, ok && json.Unmarshal(raw, &v) == nil
	}
	if t, _ := str("type"); t != "service_account" {
		return want + `: its "type" must be "service_account"`
	}
	if email, ok := str("client_email"); !ok || !destination.ValidEmail(email) {
		return want + `: its "client_email" must be an email address`
	}
	key, ok := str("private_key")
	if !ok {
		return want + `: its "private_key" is missing`
	}
	if msg := destination.CheckPrivateKeyPEM(key); msg != "" {
		return want + `: its "private_key" must be a valid RSA private key in PEM form`
	}
	return ""
}
