package ingest_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/ingest"
)

var requestErrorCodes = []string{
	ingest.CodeInvalidJSON, ingest.CodeEmpty, ingest.CodeTooManyEvents, ingest.CodeEventTooLarge,
	ingest.CodeValidation, ingest.CodeNamespace, ingest.CodeIdempotencyKey, ingest.CodeRateLimited, ingest.CodeDuplicateKey,
}

// FuzzIngestDecode feeds arbitrary bodies, in both formats, to Ingest with a publisher and a
// learner that never fail. Ingest must not panic, and must return either one id per published
// event or a *RequestError with nothing published — never a nil error without ids.
func FuzzIngestDecode(f *testing.F) {
	for _, s := range []struct {
		body   string
		ndjson bool
		header string
	}{
		{groupEvent, false, ""},
		{groupEvent, false, "key-1"},
		{array(groupEvent, projectEvent, userEvent, instanceEvent), false, ""},
		{ndjson(groupEvent, projectEvent, userEvent, instanceEvent), true, ""},
		{"\r\n" + userEvent + "\r\n\r\n" + instanceEvent + "\r\n", true, ""},
		{ndjson(userEvent), true, "key-2"},
		{array(userEvent, userEvent), false, "key-3"},
		{invalidEvent, false, ""},
		{array(userEvent, invalidEvent), false, ""},
		{`{"event_type":"add_gpg_key","entity_type":"User","entity_id":"51"}`, false, ""},
		{`{"event_type":"add_gpg_key","entity_type":"User","entity_id":1,"extra":1}`, true, ""},
		{`{"event_type":"add_gpg_key","entity_type":"User","entity_id":1,"idempotency_key":"k","target_id":"x","details":{"a":[1]}}`, false, ""},
		{groupEvent + " trailing", false, ""},
		{"[" + userEvent + ",]", false, ""},
		{"[1, null, \"x\", []]", false, ""},
		{"null", false, ""},
		{"null\nnull", true, ""},
		{"", false, ""},
		{"  \n ", true, ""},
		{"[]", false, ""},
		{"{}", true, ""},
		{"\xef\xbb\xbf" + userEvent, false, ""},
		{strings.Repeat(userEvent, 70), true, ""},
	} {
		f.Add([]byte(s.body), s.ndjson, s.header)
	}
	f.Fuzz(func(t *testing.T, body []byte, isNDJSON bool, header string) {
		fx := setup(t)
		fx.svc.Limits = ingest.Limits{MaxEvents: 64, MaxEventBytes: 8 << 10}
		format := ingest.FormatJSON
		if isNDJSON {
			format = ingest.FormatNDJSON
		}
		res, err := fx.svc.Ingest(t.Context(), ingest.Request{Body: bytes.NewReader(body), Format: format, IdempotencyKey: header})
		if err == nil {
			require.NotEmpty(t, res.IDs, "a nil error without ids")
			msgs := fx.messages(t)
			require.Len(t, msgs, len(res.IDs))
			for _, m := range msgs {
				require.LessOrEqual(t, len(m.Data), 8<<10)
				var ev event.Event
				require.NoError(t, json.Unmarshal(m.Data, &ev), "published %q", m.Data)
				require.NotNil(t, fx.svc.Catalog.Lookup(ev.EventType))
				require.True(t, strings.HasPrefix(m.Subject, "audit."), m.Subject)
				require.True(t, strings.HasSuffix(m.Subject, "."+ev.EventType), m.Subject)
			}
			if header != "" {
				require.Len(t, msgs, 1, "the header is accepted for one event only")
			}
			return
		}
		var re *ingest.RequestError
		require.ErrorAs(t, err, &re, "error %v (%T) is not a *RequestError", err, err)
		require.Contains(t, requestErrorCodes, re.Code)
		require.NotEmpty(t, re.Message)
		require.Empty(t, res.IDs)
		require.Equal(t, 0, fx.publishCalls(), "a rejected request published something")
		for _, ee := range re.Events {
			require.GreaterOrEqual(t, ee.Index, 0)
			require.Less(t, ee.Index, 65)
			require.NotEmpty(t, ee.Errors)
		}
		_, err = json.Marshal(re)
		require.NoError(t, err)
	})
}
