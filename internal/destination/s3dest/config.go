package s3dest

import (
	"regexp"
	"strings"
	"unicode"

	"github.com/auditstream/auditstream/internal/destination"
)

// MaxSecretLen bounds an AWS secret access key. AWS keys have 40 characters and S3-compatible
// stores use up to 64; 128 is GitLab's cap on the access key id beside it.
const MaxSecretLen = 128

// Patterns, from GitLab's JSON schema (EE app/validators/json_schemas/
// audit_events_aws_external_streaming_destination_config.json) and validators.
var (
	accessKeyPattern = regexp.MustCompile(`^\w+$`)
	bucketPattern    = regexp.MustCompile(`^[a-z0-9][a-z0-9\-.]*$`)
	regionPattern    = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$`)
)

// rubyWhitespace is what Ruby's String#strip removes.
const rubyWhitespace = " \t\n\v\f\r\x00"

// Config is an aws destination's config, checked (see Type).
type Config struct {
	AccessKeyXid, BucketName, AWSRegion string
	Endpoint                            string // for S3-compatible stores; "" for AWS
	PathStyle                           bool
	Batched                             bool // config.batch: one object per batch
}

// Type is the aws category (GitLab's, Amazon S3). The config rules are GitLab's, plus ours:
//
//   - accessKeyXid (16 to 128 of [A-Za-z0-9_]), bucketName (3 to 63, S3's minimum where
//     GitLab has 1, ^[a-z0-9][a-z0-9.-]*$), awsRegion (whitespace stripped, as GitLab does,
//     then at most 50 characters of ^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$).
//   - Ours: endpoint (an http(s) URL, for S3-compatible stores), pathStyle (boolean).
//
// The secret is the secret access key: required, at most MaxSecretLen characters, printable,
// no whitespace.
var Type = &destination.Type{
	Category:         destination.CategoryAWS,
	Title:            "Amazon S3",
	KeepsCheckpoints: true, // checkpoints/<size>-<root>.checkpoint beside the batches
	Fields: []destination.Field{
		{Key: "accessKeyXid", Label: "Access key ID", Kind: "text", Required: true},
		{Key: "bucketName", Label: "Bucket name", Kind: "text", Required: true},
		{Key: "awsRegion", Label: "Region", Kind: "text", Required: true, Help: "For example eu-west-1."},
		{Key: "endpoint", Label: "Endpoint", Kind: "url", Help: "Only for S3-compatible stores (MinIO, Ceph, R2, …)."},
		{Key: "pathStyle", Label: "Path-style addressing", Kind: "checkbox", Help: "Needed by most S3-compatible stores."},
	},
	Parse: parse,
	Secret: destination.Secret{
		MaxLen: MaxSecretLen,
		Check: func(secret string) string {
			if strings.ContainsFunc(secret, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) {
				return "must be the secret access key: printable characters without spaces"
			}
			return ""
		},
		Label: "Secret access key", Kind: "password",
	},
	New: func(cfg any, s destination.Settings, env destination.Env) (destination.Sender, error) {
		return newSender(cfg.(Config), s, env)
	},
	Where: func(cfg any) string {
		c := cfg.(Config)
		w := "s3://" + c.BucketName
		if c.AWSRegion != "" {
			w += " (" + c.AWSRegion + ")"
		}
		if h := destination.HostOf(c.Endpoint); h != "" {
			w += " at " + h
		}
		return w
	},
}

func parse(o *destination.Object) any {
	var cfg Config
	if s, ok := o.String("accessKeyXid", true); ok {
		f := o.Field("accessKeyXid")
		if o.Length(f, s, 16, 128) && o.Match(f, s, accessKeyPattern, "may only contain letters, digits and _") {
			o.SetString("accessKeyXid", s)
			cfg.AccessKeyXid = s
		}
	}
	if s, ok := o.String("bucketName", true); ok {
		f := o.Field("bucketName")
		if o.Length(f, s, 3, 63) && o.Match(f, s, bucketPattern, "must start with a lower-case letter or digit and contain only lower-case letters, digits, - and .") {
			o.SetString("bucketName", s)
			cfg.BucketName = s
		}
	}
	if s, ok := o.String("awsRegion", true); ok {
		// GitLab strips the region (normalize_aws_region) before it validates and saves it.
		f := o.Field("awsRegion")
		s = strings.Trim(s, rubyWhitespace)
		switch {
		case s == "":
			o.Problem(f, destination.CodeRequired, 0, "must not be blank")
		case o.Length(f, s, 1, 50) && o.Match(f, s, regionPattern, "must be a valid region code, for example us-east-1"):
			o.SetString("awsRegion", s)
			cfg.AWSRegion = s
		}
	}
	if s, ok := o.String("endpoint", false); ok && o.URL(o.Field("endpoint"), s, false) {
		o.SetString("endpoint", s)
		cfg.Endpoint = s
	}
	if b, ok := o.Bool("pathStyle"); ok {
		o.SetBool("pathStyle", b)
		cfg.PathStyle = b
	}
	cfg.Batched = o.Has("batch")
	return cfg
}
