package destination_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/format"
	"github.com/auditstream/auditstream/internal/event"
)

// minimalConfig is a valid config of each category, without format.
var minimalConfig = map[string]string{
	"http":    `{"url":"https://siem.example.com/in"}`,
	"aws":     `{"bucketName":"audit","awsRegion":"eu-west-1","accessKeyXid":"AKIAIOSFODNN7EXAMPLE"}`,
	"gcp":     `{"googleProjectIdName":"acme-prod","clientEmail":"sa@acme.iam.gserviceaccount.com"}`,
	"gcs":     `{"bucketName":"audit-logs"}`,
	"splunk":  `{"url":"https://hec.example.com:8088"}`,
	"kafka":   `{"brokers":"kafka.example.com:9092","topic":"audit"}`,
	"syslog":  `{"address":"siem.example.com:514"}`,
	"datadog": `{}`,
}

// withFormat returns config with "format": name added.
func withFormat(t *testing.T, config, name string) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(config), &m))
	m["format"] = name
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

// TestParseConfigFormat: every category takes format, the formats format.ForCategory gives it
// and no other; a refused format is one ConfigError with CodeUnsupportedFormat at
// config.format; GitLab's configs without format are stored as before, without the key.
func TestParseConfigFormat(t *testing.T) {
	t.Parallel()
	require.ElementsMatch(t, registry.Categories(), func() []string {
		var cs []string
		for c := range minimalConfig {
			cs = append(cs, c)
		}
		return cs
	}())
	for _, category := range registry.Categories() {
		base := minimalConfig[category]
		plain, err := registry.ParseConfig(category, []byte(base))
		require.NoError(t, err, category)
		require.NotContains(t, string(plain.JSON), "format", category)
		allowed := format.ForCategory(category)
		require.Equal(t, format.GitLab, allowed[0])
		for _, name := range format.Names() {
			cfg, err := registry.ParseConfig(category, withFormat(t, base, name))
			if !strings.Contains(strings.Join(allowed, ","), name) {
				errs := destination.ConfigErrors(err)
				require.Len(t, errs, 1, "%s %s: %v", category, name, err)
				require.Equal(t, "config.format", errs[0].Field)
				require.Equal(t, destination.CodeUnsupportedFormat, errs[0].Code)
				require.Contains(t, errs[0].Message, "use one of "+strings.Join(allowed, ", "))
				continue
			}
			require.NoError(t, err, "%s %s", category, name)
			require.Contains(t, string(cfg.JSON), `"format":"`+name+`"`)
			again, err := registry.ParseConfig(category, cfg.JSON)
			require.NoError(t, err)
			require.Equal(t, cfg.JSON, again.JSON, "a stored config parses to itself")
		}
	}
	for _, bad := range []struct{ config, code, msg string }{
		{`{"url":"https://x.example.com","format":"xml"}`, destination.CodeUnsupportedFormat, "must be one of gitlab, ocsf, cef"},
		{`{"url":"https://x.example.com","format":"OCSF"}`, destination.CodeUnsupportedFormat, "must be one of gitlab, ocsf, cef"},
		{`{"url":"https://x.example.com","format":1}`, destination.CodeWrongType, "must be a string"},
	} {
		errs := destination.ConfigErrors(func() error { _, err := registry.ParseConfig("http", []byte(bad.config)); return err }())
		require.Len(t, errs, 1, bad.config)
		require.Equal(t, "config.format", errs[0].Field)
		require.Equal(t, bad.code, errs[0].Code)
		require.Contains(t, errs[0].Message, bad.msg)
	}
	// "" and null are GitLab's, as for every optional string.
	for _, c := range []string{`{"url":"https://x.example.com","format":""}`, `{"url":"https://x.example.com","format":null}`} {
		cfg, err := registry.ParseConfig("http", []byte(c))
		require.NoError(t, err)
		require.JSONEq(t, `{"url":"https://x.example.com"}`, string(cfg.JSON))
	}
}

// TestEncoding: the zero Encoding and GitLab's pass the JSON through, the same slice; OCSF and
// CEF write what package format writes; an event that cannot be written is a permanent failure.
func TestEncoding(t *testing.T) {
	t.Parallel()
	ev := destination.Event{ID: 7, Type: "user_created", CreatedAt: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC),
		JSON: []byte(`{"id":7,"author_id":1,"author_name":"root","entity_id":2,"entity_type":"User","event_type":"user_created","details":{},"created_at":"2026-11-26T12:00:00.000Z"}`)}
	for _, e := range []destination.Encoding{{}, destination.NewEncoding("", nil), destination.NewEncoding(format.GitLab, nil)} {
		require.True(t, e.GitLab())
		require.Equal(t, format.GitLab, e.Name())
		require.Equal(t, "application/json", e.ContentType())
		p, err := e.Payload(ev)
		require.NoError(t, err)
		require.Same(t, &ev.JSON[0], &p[0], "GitLab's payload is the event's JSON, not a copy")
	}
	cat, err := event.Load("")
	require.NoError(t, err)
	enc := format.New(cat, format.Options{ProductVersion: "9.9.9"})
	for _, name := range []string{format.OCSF, format.CEF} {
		e := destination.NewEncoding(name, enc)
		require.False(t, e.GitLab())
		require.Equal(t, name, e.Name())
		require.Equal(t, format.ContentType(name), e.ContentType())
		want, err := enc.Append(nil, name, ev.JSON)
		require.NoError(t, err)
		got, err := e.Payloads([]destination.Event{ev, ev})
		require.NoError(t, err)
		require.Equal(t, [][]byte{want, want}, got)
		_, err = e.Payload(destination.Event{ID: 8, JSON: []byte(`{"id":8}`)})
		require.Error(t, err)
		require.Equal(t, destination.Permanent, destination.Classify(err).Kind)
		require.Contains(t, err.Error(), "cannot write event 8 as "+name)
	}
	// Without an encoder, the embedded catalog maps the types.
	p, err := destination.NewEncoding(format.OCSF, nil).Payload(ev)
	require.NoError(t, err)
	require.Contains(t, string(p), `"class_uid":3001`)
}

// TestOpenGivesTheSenderTheFormat: Type.Decode reads format from the stored config into
// Settings.Format.
func TestOpenGivesTheSenderTheFormat(t *testing.T) {
	t.Parallel()
	ty, _ := registry.Type("kafka")
	_, s, err := ty.Decode(destination.Settings{Category: "kafka", Config: withFormat(t, minimalConfig["kafka"], format.CEF)}, destination.Env{})
	require.NoError(t, err)
	require.Equal(t, format.CEF, s.Format.Name())
	_, s, err = ty.Decode(destination.Settings{Category: "kafka", Config: []byte(minimalConfig["kafka"])}, destination.Env{})
	require.NoError(t, err)
	require.True(t, s.Format.GitLab())
}
