package web

import "testing"

// TestWhereNamesNoSecret: the streams list says where each stream goes from its config, and
// never shows what a URL's user info, path or query may hold (a key, a password).
func TestWhereNamesNoSecret(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		category, config, want string
	}{
		{"http", `{"url":"https://user:pa55@siem.example.com:8443/in?api_key=s3cret#x"}`, "siem.example.com:8443"},
		{"splunk", `{"url":"https://hec.example.com/services/collector?token=s3cret"}`, "hec.example.com"},
		{"aws", `{"bucketName":"audit","awsRegion":"eu-west-1","accessKeyXid":"AKIAIOSFODNN7EXAMPLE"}`, "s3://audit (eu-west-1)"},
		{"aws", `{"bucketName":"audit","awsRegion":"us-east-1","endpoint":"https://minio.internal:9000/?x=s3cret"}`, "s3://audit (us-east-1) at minio.internal:9000"},
		{"gcs", `{"bucketName":"audit-logs"}`, "gs://audit-logs"},
		{"gcp", `{"googleProjectIdName":"acme","logIdName":"audit_events","clientEmail":"sa@acme.iam.gserviceaccount.com"}`, "projects/acme/logs/audit_events"},
		{"http", `not json`, ""},
	} {
		if got := where(c.category, []byte(c.config)); got != c.want {
			t.Errorf("where(%s, %s) = %q, want %q", c.category, c.config, got, c.want)
		}
	}
}
