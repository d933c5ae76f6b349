package format_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/event"
)

// ocsfSchema is testdata/ocsf-1.3.0-required.json: what the OCSF 1.3.0 schema requires of the
// classes and objects we write, extracted from github.com/ocsf/ocsf-schema (tag 1.3.0).
type ocsfSchema struct {
	Version string `json:"version"`
	Classes map[string]struct {
		Name        string            `json:"name"`
		CategoryUID int               `json:"category_uid"`
		Required    []string          `json:"required"`
		AtLeastOne  [][]string        `json:"at_least_one"`
		Activities  map[string]string `json:"activities"`
	} `json:"classes"`
	Objects map[string]struct {
		Required   []string   `json:"required"`
		AtLeastOne [][]string `json:"at_least_one"`
	} `json:"objects"`
	AttributeTypes map[string]string `json:"attribute_types"`
}

func loadOCSFSchema(tb testing.TB) *ocsfSchema {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "ocsf-1.3.0-required.json"))
	require.NoError(tb, err)
	var s ocsfSchema
	require.NoError(tb, json.Unmarshal(b, &s))
	require.Equal(tb, event.OCSFVersion, s.Version)
	return &s
}

// present reports whether v counts as given: not null, not an empty string, object or array.
func present(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case string:
		return v != ""
	case map[string]any:
		return len(v) > 0
	case []any:
		return len(v) > 0
	}
	return true
}

// checkObject returns what obj lacks of what the schema requires of objType, descending into
// attributes whose object type the schema file knows.
func (s *ocsfSchema) checkObject(path, objType string, obj map[string]any) []string {
	var missing []string
	if o, ok := s.Objects[objType]; ok {
		missing = append(missing, checkRules(path, obj, o.Required, o.AtLeastOne)...)
	}
	return append(missing, s.descend(path, obj)...)
}

func (s *ocsfSchema) descend(path string, obj map[string]any) []string {
	var missing []string
	for k, v := range obj {
		t, ok := s.AttributeTypes[k]
		if !ok || path == "unmapped" {
			continue
		}
		switch v := v.(type) {
		case map[string]any:
			missing = append(missing, s.checkObject(path+"."+k, t, v)...)
		case []any:
			for i, e := range v {
				if m, ok := e.(map[string]any); ok {
					missing = append(missing, s.checkObject(fmt.Sprintf("%s.%s[%d]", path, k, i), t, m)...)
				}
			}
		}
	}
	return missing
}

func checkRules(path string, obj map[string]any, required []string, atLeastOne [][]string) []string {
	var missing []string
	for _, r := range required {
		if !present(obj[r]) {
			missing = append(missing, path+"."+r)
		}
	}
	for _, set := range atLeastOne {
		ok := false
		for _, a := range set {
			ok = ok || present(obj[a])
		}
		if !ok {
			missing = append(missing, fmt.Sprintf("%s: one of %v", path, set))
		}
	}
	return missing
}

// validateOCSF checks one encoded event against the schema file: one line, the class's
// required attributes and constraints, every object's, and the classification numbers
// (category_uid, activity_id among the class's, type_uid = class_uid*100 + activity_id).
func validateOCSF(t *testing.T, s *ocsfSchema, out []byte) map[string]any {
	t.Helper()
	require.NotContains(t, string(out), "\n")
	var ev map[string]any
	d := json.NewDecoder(bytes.NewReader(out))
	d.UseNumber()
	require.NoError(t, d.Decode(&ev), "%s", out)
	classUID := ev["class_uid"].(json.Number).String()
	class, ok := s.Classes[classUID]
	require.True(t, ok, "class_uid %s is one of the classes in the schema file", classUID)
	var missing []string
	missing = append(missing, checkRules("", ev, class.Required, class.AtLeastOne)...)
	missing = append(missing, s.descend("", ev)...)
	require.Empty(t, missing, "%s", out)

	num := func(k string) int64 {
		n, err := ev[k].(json.Number).Int64()
		require.NoError(t, err, k)
		return n
	}
	require.EqualValues(t, class.CategoryUID, num("category_uid"))
	activity := strconv.FormatInt(num("activity_id"), 10)
	caption, ok := class.Activities[activity]
	require.True(t, ok, "activity_id %s of %s", activity, class.Name)
	if activity != "99" {
		require.Equal(t, caption, ev["activity_name"])
	}
	cuid, _ := strconv.ParseInt(classUID, 10, 64)
	require.Equal(t, cuid*100+num("activity_id"), num("type_uid"))
	require.EqualValues(t, 1, num("severity_id"))
	meta := ev["metadata"].(map[string]any)
	require.Equal(t, event.OCSFVersion, meta["version"])
	return ev
}

// TestOCSFSamples encodes every GitLab sample and validates it against its class.
func TestOCSFSamples(t *testing.T) {
	t.Parallel()
	enc, cat := setup(t)
	schema := loadOCSFSchema(t)
	for _, s := range samples(t) {
		t.Run(s.Section, func(t *testing.T) {
			out, err := enc.AppendOCSF(nil, s.Event)
			require.NoError(t, err)
			ev := validateOCSF(t, schema, out)

			var in event.Event
			require.NoError(t, in.UnmarshalJSON(s.Event))
			require.EqualValues(t, in.CreatedAt.UnixMilli(), mustInt(t, ev["time"]))
			actor := ev["actor"].(map[string]any)["user"].(map[string]any)
			require.Equal(t, strconv.FormatInt(in.AuthorID, 10), actor["uid"])
			if ip := ipOf(t, s.Event); ip != "" {
				require.Equal(t, ip, ev["src_endpoint"].(map[string]any)["ip"])
			}
			if typ := cat.Lookup(in.EventType); typ != nil {
				require.Equal(t, fmt.Sprint(event.LookupOCSFClass(typ.OCSF.Class).UID), ev["class_uid"].(json.Number).String())
			} else {
				require.Equal(t, "6003", ev["class_uid"].(json.Number).String(), "an unknown type falls back to API Activity")
				require.EqualValues(t, 99, mustInt(t, ev["activity_id"]))
			}
			// GitLab's details travel whole, in unmapped.
			var details map[string]any
			require.NoError(t, json.Unmarshal(in.Details, &details))
			got, err := json.Marshal(ev["unmapped"].(map[string]any)["details"])
			require.NoError(t, err)
			want, err := json.Marshal(details)
			require.NoError(t, err)
			require.JSONEq(t, string(want), string(got))

			again, err := enc.AppendOCSF(nil, s.Event)
			require.NoError(t, err)
			require.Equal(t, string(out), string(again), "deterministic")
		})
	}
}

// TestOCSFEveryMappingOnEverySample writes every sample as every event type of the catalog, so
// that each type's mapping is validated against its class on each shape of GitLab's events.
func TestOCSFEveryMappingOnEverySample(t *testing.T) {
	t.Parallel()
	enc, cat := setup(t)
	schema := loadOCSFSchema(t)
	perClass := map[string]int{}
	for _, s := range samples(t) {
		var ev event.Event
		require.NoError(t, ev.UnmarshalJSON(s.Event))
		for _, typ := range cat.Types() {
			ev.EventType = typ.Name
			out, err := enc.AppendOCSF(nil, ev.AppendJSON(nil))
			require.NoError(t, err)
			got := validateOCSF(t, schema, out)
			class := event.LookupOCSFClass(typ.OCSF.Class)
			require.Equal(t, strconv.Itoa(class.UID), got["class_uid"].(json.Number).String(), typ.Name)
			require.EqualValues(t, class.Activities[typ.OCSF.Activity], mustInt(t, got["activity_id"]), typ.Name)
			if typ.OCSF.Status == "failure" {
				require.EqualValues(t, 2, mustInt(t, got["status_id"]), typ.Name)
			} else {
				require.EqualValues(t, 1, mustInt(t, got["status_id"]), typ.Name)
			}
			perClass[schema.Classes[strconv.Itoa(class.UID)].Name]++
		}
	}
	require.Len(t, perClass, len(schema.Classes), "every class in the schema file is exercised")
}

// TestOCSFClassesMatchSchema checks internal/event's table of classes and activities against
// the numbers extracted from the schema.
func TestOCSFClassesMatchSchema(t *testing.T) {
	t.Parallel()
	schema := loadOCSFSchema(t)
	require.Len(t, event.OCSFClassNames(), len(schema.Classes))
	for uid, want := range schema.Classes {
		c := event.LookupOCSFClass(want.Name)
		require.NotNil(t, c, want.Name)
		require.Equal(t, uid, strconv.Itoa(c.UID))
		require.Equal(t, want.CategoryUID, c.CategoryUID)
		for id, caption := range want.Activities {
			n, _ := strconv.Atoi(id)
			if n == 0 {
				continue // Unknown: never written
			}
			require.Equal(t, caption, c.ActivityCaptions[n], "%s activity %d", want.Name, n)
		}
		require.Len(t, c.ActivityCaptions, len(want.Activities)-1, want.Name)
	}
}

func TestOCSFProducerAndIPv6(t *testing.T) {
	t.Parallel()
	enc, _ := setup(t)
	ev := event.Event{ID: 42, AuthorID: 7, AuthorName: "Ada <ada@example.com>", EntityID: 3, EntityType: "Group",
		EntityPath: "acme", Details: []byte(`{"custom_message":"Added member","as":"Developer"}`), IPAddress: "2001:db8::1",
		TargetID: []byte(`9`), TargetType: "User", TargetDetails: "bob", EventType: "member_created",
		Producer: event.Producer{TokenID: 5, UserID: 1, Username: "gitlab", Via: event.ViaIngest}}
	ev.CreatedAt = mustTime(t, "2025-10-14T18:00:08.677Z")
	out, err := enc.AppendOCSF(nil, ev.AppendJSON(nil))
	require.NoError(t, err)
	got := validateOCSF(t, loadOCSFSchema(t), out)
	require.Equal(t, "Group Management", got["class_name"])
	require.Equal(t, "Add User", got["activity_name"])
	require.Equal(t, map[string]any{"uid": "9", "name": "bob"}, got["user"])
	require.Equal(t, map[string]any{"uid": "3", "name": "acme", "type": "Group"}, got["group"])
	require.Equal(t, "2001:db8::1", got["src_endpoint"].(map[string]any)["ip"])
	require.Equal(t, "Added member", got["message"])
	require.Equal(t, "42", got["metadata"].(map[string]any)["uid"])
	unmapped := got["unmapped"].(map[string]any)
	require.Equal(t, map[string]any{"token_id": json.Number("5"), "user_id": json.Number("1"), "username": "gitlab", "via": "ingest"},
		unmapped[event.ProducerKey])
}

func mustInt(t *testing.T, v any) int64 {
	t.Helper()
	n, err := v.(json.Number).Int64()
	require.NoError(t, err)
	return n
}

// ipOf is the address a streamed event says it came from: top level, else details (REST form).
func ipOf(t *testing.T, streamed []byte) string {
	t.Helper()
	var ev struct {
		IP      string `json:"ip_address"`
		Details struct {
			IP *string `json:"ip_address"`
		} `json:"details"`
	}
	require.NoError(t, json.Unmarshal(streamed, &ev))
	if ev.IP == "" && ev.Details.IP != nil {
		return *ev.Details.IP
	}
	return ev.IP
}
