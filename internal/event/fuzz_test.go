package event_test

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/event"
)

// FuzzNormalize decodes a producer's event, normalizes it and, when it is valid, checks that its
// encoding is valid JSON and valid UTF-8 with exactly the streaming keys, that it decodes again
// to the same event, and that re-encoding gives the same bytes.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		`{"event_type":"group_share_with_group_link_created","entity_type":"Group","entity_id":24,"entity_path":"gitlab-duo","author_id":1,"author_name":"Administrator","target_id":24,"target_type":"Group","target_details":"Gitlab Org","ip_address":"172.16.123.1","details":{"custom_message":"Invited"},"created_at":"2025-10-14T18:00:08.677Z"}`,
		`{"event_type":"repository_git_operation","entity_type":"Project","entity_path":"example-group/example-project","author_id":-3,"author_name":"deploy-key-name","target_id":"29","details":{"custom_message":{"protocol":"ssh","action":"git-upload-pack"}},"created_at":"2022-07-26T07:43:53.662+02:00"}`,
		`{"event_type":"add_gpg_key","entity_type":"User","entity_id":51,"entity_path":"Andreas <a&b>","ip_address":"2001:DB8::1","target_id":null}`,
		`{"event_type":"add_gpg_key","entity_type":"Instance","author_name":"\u2028\"\\","details":null}`,
		`{"event_type":"add_gpg_key","entity_type":"Gitlab::Audit::InstanceScope","target_id":-1.5e3,"details":{"a":[1,"<>",{"b":null}]}}`,
		`{"event_type":"x","entity_type":"Group","entity_path":"/bad//path/","ip_address":"::ffff:1.2.3.4%eth0","target_id":{},"details":[]}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	cat, err := defaultCatalog()
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, body []byte) {
		var in event.Input
		if json.Unmarshal(body, &in) != nil {
			return
		}
		ev, errs := event.Normalize(&in, cat, now)
		require.True(t, json.Valid(ev.Details), "details %q", ev.Details)
		require.True(t, json.Valid(ev.TargetID), "target_id %q", ev.TargetID)
		if len(errs) > 0 {
			for _, e := range errs {
				require.NotEmpty(t, e.Field)
				require.Contains(t, []string{event.CodeRequired, event.CodeUnknownEventType, event.CodeInvalid, event.CodeTooLong}, e.Code)
			}
			return
		}
		ev.ID = 42
		b := ev.AppendJSON(nil)
		require.True(t, json.Valid(b), "%q", b)
		require.True(t, utf8.Valid(b), "invalid UTF-8 in %q", b)
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(b, &m))
		require.ElementsMatch(t, streamingKeys, keysOf(m))
		var back event.Event
		require.NoError(t, json.Unmarshal(b, &back), "%q", b)
		require.Equal(t, ev.ID, back.ID)
		require.Equal(t, ev.EventType, back.EventType)
		require.True(t, ev.CreatedAt.Equal(back.CreatedAt))
		require.Equal(t, string(b), string(back.AppendJSON(nil)), "re-encoding is stable")
	})
}
