package cloudlogging

import (
	"regexp"
	"strings"

	"github.com/auditstream/auditstream/internal/destination"
)

// Patterns, from GitLab's JSON schema (EE app/validators/json_schemas/
// audit_events_gcp_external_streaming_destination_config.json).
var (
	projectPattern = regexp.MustCompile(`^[a-z][a-z0-9-]*[a-z0-9]$`)
	logIDPattern   = regexp.MustCompile(`^[\w/.-]+$`)
)

// Config is a gcp destination's config, checked (see Type).
type Config struct {
	Project, Email, LogID string
	Batched               bool
}

// Type is the gcp category (GitLab's, Google Cloud Logging). The config rules are GitLab's:
// googleProjectIdName (6 to 30, ^[a-z][a-z0-9-]*[a-z0-9]$), clientEmail (at most 254, one @
// between a local part and a domain), logIdName (at most 511 of [\w/.-];
// destination.DefaultLogIDName when missing or blank). A batch is at most
// destination.MaxCloudLoggingWriteBytes.
//
// The secret is the service account's private key in PEM form, PKCS#8 ("-----BEGIN PRIVATE
// KEY-----", what Google's key files hold) or PKCS#1, unencrypted RSA; required, at most
// destination.MaxSecretTokenLen characters. Not the whole JSON key file: the message says so
// when it looks like one.
var Type = &destination.Type{
	Category: destination.CategoryGCP,
	Title:    "Google Cloud Logging",
	Fields: []destination.Field{
		{Key: "googleProjectIdName", Label: "Google project ID", Kind: "text", Required: true},
		{Key: "clientEmail", Label: "Service account email", Kind: "text", Required: true},
		{Key: "logIdName", Label: "Log ID", Kind: "text", Help: "Default: " + destination.DefaultLogIDName + "."},
	},
	MaxBatchBytes: destination.MaxCloudLoggingWriteBytes,
	Parse:         parse,
	Secret: destination.Secret{
		Check: func(secret string) string {
			// GitLab checks only that the key is present, and its documented example uses the
			// placeholder "YOUR_PRIVATE_KEY", so a value that is not PEM at all passes (a bad key
			// shows when delivering). What is recognizably a mistake does not: a pasted JSON key
			// file, which GitLab's documentation warns about, or a PEM key that does not parse.
			if t := strings.TrimSpace(secret); strings.HasPrefix(t, "{") || strings.Contains(t, "-----BEGIN") {
				return destination.CheckPrivateKeyPEM(secret)
			}
			return ""
		},
		Label: "Private key (PEM)", Kind: "textarea",
		Help: "The private_key of the service account's key file, BEGIN and END lines included.",
	},
	New: func(cfg any, s destination.Settings, env destination.Env) (destination.Sender, error) {
		return newSender(cfg.(Config), s, env, LoggingBaseURL, TokenURL)
	},
	Where: func(cfg any) string {
		c := cfg.(Config)
		return "projects/" + c.Project + "/logs/" + c.LogID
	},
}

func parse(o *destination.Object) any {
	var cfg Config
	if s, ok := o.String("googleProjectIdName", true); ok {
		f := o.Field("googleProjectIdName")
		if o.Length(f, s, 6, 30) && o.Match(f, s, projectPattern, "must start with a lower-case letter, end with a lower-case letter or digit, and contain only lower-case letters, digits and -") {
			o.SetString("googleProjectIdName", s)
			cfg.Project = s
		}
	}
	if s, ok := o.String("clientEmail", true); ok {
		f := o.Field("clientEmail")
		if o.Length(f, s, 1, 254) {
			if destination.ValidEmail(s) {
				o.SetString("clientEmail", s)
				cfg.Email = s
			} else {
				o.Problem(f, destination.CodeInvalid, 0, "must be an email address")
			}
		}
	}
	// GitLab fills in the default when logIdName is blank (assign_default_log_id).
	cfg.LogID = destination.DefaultLogIDName
	if s, ok := o.String("logIdName", false); ok && strings.TrimSpace(s) != "" {
		f := o.Field("logIdName")
		if o.Length(f, s, 1, 511) && o.Match(f, s, logIDPattern, "may only contain letters, digits and _ / . -") {
			cfg.LogID = s
		}
	}
	o.SetString("logIdName", cfg.LogID)
	cfg.Batched = o.Has("batch")
	return cfg
}
