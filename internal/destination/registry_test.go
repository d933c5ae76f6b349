package destination_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/cloudlogging"
	"github.com/auditstream/auditstream/internal/destination/datadog"
	"github.com/auditstream/auditstream/internal/destination/gcsdest"
	"github.com/auditstream/auditstream/internal/destination/httpdest"
	"github.com/auditstream/auditstream/internal/destination/kafka"
	"github.com/auditstream/auditstream/internal/destination/s3dest"
	"github.com/auditstream/auditstream/internal/destination/splunkhec"
	"github.com/auditstream/auditstream/internal/destination/syslog"
)

// registry is every category, as internal/app wires them, for the tests of the rules every
// category shares (the document, batch, delivery, errors), of GitLab's categories' and our first
// two's rules (configCases), and for FuzzParseConfig, which runs every category's parser.
var registry = destination.NewRegistry(httpdest.Type, s3dest.Type, cloudlogging.Type, gcsdest.Type, splunkhec.Type,
	kafka.Type, syslog.Type, datadog.Type)

func TestNewRegistryRefusesACategoryTwice(t *testing.T) {
	require.PanicsWithValue(t, "destination: category http registered twice", func() {
		destination.NewRegistry(httpdest.Type, s3dest.Type, httpdest.Type)
	})
	require.Panics(t, func() { destination.NewRegistry(&destination.Type{Category: "x"}) })
}

func TestRegistryFactoriesOpenWithTheTypesParse(t *testing.T) {
	f := registry.Factories()
	require.Len(t, f, len(registry.Categories()))
	// A stored config that no longer parses is refused, naming the field and not the value.
	_, err := f[destination.CategoryHTTP](destination.Settings{Category: destination.CategoryHTTP, Config: []byte(`{"url":"ftp://S3cr3tV4lue@example.com"}`)}, destination.Env{})
	require.Error(t, err)
	require.Equal(t, destination.Permanent, destination.Classify(err).Kind)
	require.Contains(t, err.Error(), "config.url")
	require.NotContains(t, err.Error(), secretMarker)
	// A config of another category is refused.
	_, err = f[destination.CategoryAWS](destination.Settings{Category: destination.CategoryHTTP, Config: []byte(`{"url":"https://example.com"}`)}, destination.Env{})
	require.ErrorContains(t, err, `the aws sender cannot deliver to a "http" destination`)
}

// TestRegistryWhere: the streams list says where each stream goes from its config, and never
// shows what a URL's user info, path or query may hold (a key, a password). (It was the web
// UI's TestWhereNamesNoSecret; each category's package now says it.)
func TestRegistryWhere(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		category, config, want string
	}{
		{"http", `{"url":"https://user:pa55@siem.example.com:8443/in?api_key=s3cret#x"}`, "siem.example.com:8443"},
		{"splunk", `{"url":"https://hec.example.com/services/collector?token=s3cret"}`, "hec.example.com"},
		{"aws", `{"bucketName":"audit","awsRegion":"eu-west-1","accessKeyXid":"AKIAIOSFODNN7EXAMPLE"}`, "s3://audit (eu-west-1)"},
		{"aws", `{"bucketName":"audit","awsRegion":"us-east-1","accessKeyXid":"AKIAIOSFODNN7EXAMPLE","endpoint":"https://minio.internal:9000/?x=s3cret"}`, "s3://audit (us-east-1) at minio.internal:9000"},
		{"gcs", `{"bucketName":"audit-logs"}`, "gs://audit-logs"},
		{"gcp", `{"googleProjectIdName":"acme-prod","logIdName":"audit_events","clientEmail":"sa@acme.iam.gserviceaccount.com"}`, "projects/acme-prod/logs/audit_events"},
		{"http", `not json`, ""},
		{"nope", `{}`, ""},
	} {
		require.Equal(t, c.want, registry.Where(c.category, []byte(c.config)), "%s %s", c.category, c.config)
	}
}
