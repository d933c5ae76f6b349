package datadog

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/destinationtest"
)

const apiKey = "0123456789abcdef0123456789abcdef"

var registry = destination.NewRegistry(Type)

// settings are a datadog destination's delivering to url, with extra config members.
func settings(t *testing.T, url string, extra map[string]any) destination.Settings {
	t.Helper()
	cfg := map[string]any{"url": url + IntakePath + "?dd-request-id=query-secret", "ddtags": "env:test,team:security", "hostname": "gitlab.example.com"}
	for k, v := range extra {
		cfg[k] = v
	}
	raw, err := json.Marshal(cfg)
	require.NoError(t, err)
	c, err := registry.ParseConfig(Category, raw)
	require.NoError(t, err)
	return destination.Settings{ID: 3, Category: Category, Config: c.JSON, SecretToken: apiKey}
}

func eventIDs(t *testing.T, entries []map[string]any) []int64 {
	var ids []int64
	for _, e := range entries {
		var ev struct{ ID int64 }
		require.NoError(t, json.Unmarshal([]byte(e["message"].(string)), &ev))
		ids = append(ids, ev.ID)
	}
	return ids
}

// TestConformance runs the suite every category runs against the intake.
func TestConformance(t *testing.T) {
	destinationtest.Run(t, destinationtest.Harness{Batches: true, Start: func(t *testing.T) *destinationtest.Server {
		in := newIntake(t, apiKey)
		return &destinationtest.Server{
			Open: func(t *testing.T, env destination.Env, batched bool) destination.Sender {
				extra := map[string]any{}
				if batched {
					extra["batch"] = map[string]any{"maxEvents": 1000}
				}
				snd, err := New(settings(t, in.URL, extra), env)
				require.NoError(t, err)
				return snd
			},
			Delivered: func(t *testing.T) []int64 { return eventIDs(t, in.kept()) },
			Secrets:   []string{apiKey, "query-secret"},
			Stop:      in.Close,
			Refuse: func(kind destination.FailureKind) bool {
				in.setRefuse(map[destination.FailureKind]int{destination.Permanent: 400, destination.Throttled: 429, destination.Retryable: 503}[kind])
				return true
			},
		}
	}})
}

// TestEntries: each event is one entry whose message is the event JSON, with the config's
// source, service, tags and host; none is dropped, however old (Datadog drops entries dated
// more than 18 hours back, so the entries carry no date of their own).
func TestEntries(t *testing.T) {
	in := newIntake(t, apiKey)
	snd, err := New(settings(t, in.URL, map[string]any{"service": "gitlab-prod"}), destinationtest.Allowing())
	require.NoError(t, err)
	defer snd.Close()
	var code int
	batch := []destination.Event{destinationtest.Event(1, "group_created"), destinationtest.Event(2, "user_blocked")}
	require.NoError(t, snd.Send(destination.WithStatusReport(context.Background(), &code), batch))
	require.Equal(t, 202, code)
	got := in.kept()
	require.Len(t, got, 2)
	for i, e := range got {
		require.Equal(t, map[string]any{"ddsource": "gitlab", "ddtags": "env:test,team:security", "hostname": "gitlab.example.com",
			"service": "gitlab-prod", "message": string(batch[i].JSON)}, e)
	}
	require.Zero(t, in.dropped)
}

// TestAPIKeyRefusedIsPermanent: a key the intake refuses (403) fails for good, and neither the
// key nor the intake's words beyond a short excerpt are shown.
func TestAPIKeyRefusedIsPermanent(t *testing.T) {
	in := newIntake(t, "ffffffffffffffffffffffffffffffff")
	snd, err := New(settings(t, in.URL, nil), destinationtest.Allowing())
	require.NoError(t, err)
	defer snd.Close()
	f := destination.Classify(snd.Send(context.Background(), []destination.Event{destinationtest.Event(1, "group_created")}))
	require.Equal(t, destination.Permanent, f.Kind)
	require.Equal(t, 403, f.StatusCode)
	require.Contains(t, f.Message, "Forbidden")
	require.NotContains(t, f.Error(), apiKey)
}

// TestLimits: an event over Datadog's 1 MB per entry is refused before sending, and the batch
// settings cannot ask for more than Datadog takes per request.
func TestLimits(t *testing.T) {
	in := newIntake(t, apiKey)
	snd, err := New(settings(t, in.URL, nil), destinationtest.Allowing())
	require.NoError(t, err)
	defer snd.Close()
	big := destinationtest.Event(1, "group_created")
	big.JSON = []byte(strings.Replace(string(big.JSON), `"event_name":"`, `"event_name":"`+strings.Repeat("x", MaxEntryBytes), 1))
	f := destination.Classify(snd.Send(context.Background(), []destination.Event{big}))
	require.Equal(t, destination.Permanent, f.Kind)
	require.Contains(t, f.Message, "larger than Datadog's limit")
	require.Zero(t, in.requests)

	_, err = registry.ParseConfig(Category, []byte(`{"batch":{"maxEvents":1001,"maxBytes":5242881}}`))
	var fields []string
	for _, e := range destination.ConfigErrors(err) {
		fields = append(fields, e.Field+" "+e.Message)
	}
	require.Equal(t, []string{"config.batch.maxEvents must be from 1 to 1000", "config.batch.maxBytes must be from 1024 to 5242880"}, fields)
}

func TestParseConfig(t *testing.T) {
	for _, c := range []struct{ in, want, problem string }{
		{`{}`, `{"ddsource":"gitlab","service":"gitlab-audit","site":"datadoghq.com"}`, ""},
		{`{"site":"DatadogHQ.eu","ddtags":"env:prod","service":"gl","hostname":"h"}`, `{"ddsource":"gitlab","ddtags":"env:prod","hostname":"h","service":"gl","site":"datadoghq.eu"}`, ""},
		{`{"url":"https://proxy.example.com/api/v2/logs"}`, `{"url":"https://proxy.example.com/api/v2/logs","ddsource":"gitlab","service":"gitlab-audit"}`, ""},
		{`{"site":"datadoghq.org"}`, "", "config.site: must be one of datadoghq.com, us3.datadoghq.com, us5.datadoghq.com, datadoghq.eu, ap1.datadoghq.com, ap2.datadoghq.com, ddog-gov.com"},
		{`{"site":"datadoghq.eu","url":"https://proxy.example.com"}`, "", "config.url: replaces the site's intake: give either site or url"},
		{`{"service":"a\u0000b"}`, "", "config.service: may only contain printable characters"},
	} {
		cfg, err := registry.ParseConfig(Category, []byte(c.in))
		if c.problem != "" {
			require.EqualError(t, err, c.problem, c.in)
			continue
		}
		require.NoError(t, err, c.in)
		require.Equal(t, c.want, string(cfg.JSON), c.in)
		again, err := registry.ParseConfig(Category, cfg.JSON)
		require.NoError(t, err)
		require.Equal(t, cfg.JSON, again.JSON, "normalized configs parse to themselves")
	}
	require.NoError(t, registry.ValidateSecret(Category, apiKey))
	err := registry.ValidateSecret(Category, "pubkey-not-hex-"+apiKey)
	require.EqualError(t, err, "secretToken: must be a Datadog API key: 32 hexadecimal characters")
	require.NotContains(t, err.Error(), apiKey)
}

// TestFormatOCSF: with format ocsf, each entry's message is the event's OCSF JSON (Datadog
// parses it into @class_uid, @actor.user, …); the rest of the entry stays.
func TestFormatOCSF(t *testing.T) {
	in := newIntake(t, apiKey)
	snd, err := New(settings(t, in.URL, map[string]any{"format": "ocsf", "batch": map[string]any{"maxEvents": 10}}), destinationtest.Allowing())
	require.NoError(t, err)
	defer snd.Close()
	batch := []destination.Event{destinationtest.Event(1, "group_created"), destinationtest.Event(2, "user_blocked")}
	require.NoError(t, snd.Send(context.Background(), batch))
	got := in.kept()
	require.Len(t, got, 2)
	for i, e := range got {
		require.Equal(t, map[string]any{"ddsource": "gitlab", "ddtags": "env:test,team:security", "hostname": "gitlab.example.com",
			"service": "gitlab-audit", "message": string(destinationtest.Encoded(t, "ocsf", batch[i]))}, e)
	}
}
