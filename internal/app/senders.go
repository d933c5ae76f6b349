package app

import (
	"runtime/debug"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/cloudlogging"
	"github.com/auditstream/auditstream/internal/destination/datadog"
	"github.com/auditstream/auditstream/internal/destination/format"
	"github.com/auditstream/auditstream/internal/destination/gcsdest"
	"github.com/auditstream/auditstream/internal/destination/httpdest"
	"github.com/auditstream/auditstream/internal/destination/kafka"
	"github.com/auditstream/auditstream/internal/destination/s3dest"
	"github.com/auditstream/auditstream/internal/destination/splunkhec"
	"github.com/auditstream/auditstream/internal/destination/syslog"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/netguard"
)

// Destinations is the one list of the destination categories the service offers, each defined
// by its package (config, secret, sender, form). The API, the UI and the delivery engine take
// them from here; nothing else names a category's package. The order is the API's and the
// form's: GitLab's three categories, then ours.
func Destinations() *destination.Registry {
	return destination.NewRegistry(
		httpdest.Type,
		s3dest.Type,
		cloudlogging.Type,
		gcsdest.Type,
		splunkhec.Type,
		kafka.Type,
		syslog.Type,
		datadog.Type,
	)
}

// destinationEnv is what every sender gets: an HTTP client and a dialer that refuse the
// addresses policy refuses, and the encoder of the output formats, which maps the event types
// of cat (--event-types-dir included) to OCSF.
func destinationEnv(policy netguard.Policy, cat *event.Catalog) destination.Env {
	return destination.Env{HTTPClient: policy.HTTPClient(), Dial: policy.DialContext,
		Encoder: format.New(cat, format.Options{ProductVersion: productVersion()})}
}

// productVersion is the module version the binary was built from, or "" (format writes
// "unknown") for a development build.
func productVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Version == "(devel)" {
		return ""
	}
	return bi.Main.Version
}
