package event_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/event"
)

// TestCatalogOCSFMappings checks that every embedded type maps to a known OCSF class and one of
// its activities, so that a type added without a mapping (or with a misspelt one) fails here.
func TestCatalogOCSFMappings(t *testing.T) {
	t.Parallel()
	c := catalog(t)
	perClass := map[string]int{}
	for _, typ := range c.Types() {
		require.False(t, typ.OCSF.IsZero(), "%s has no ocsf mapping", typ.Name)
		require.NoError(t, typ.OCSF.Validate(), typ.Name)
		perClass[typ.OCSF.Class]++
	}
	// Every class is used, and the account and authentication types land where they belong.
	require.ElementsMatch(t, event.OCSFClassNames(), keys(perClass))
	for name, want := range map[string]event.OCSFMapping{
		"user_created":                              {Class: "account_change", Activity: "create"},
		"user_password_updated":                     {Class: "account_change", Activity: "password_change"},
		"user_enable_two_factor":                    {Class: "account_change", Activity: "mfa_factor_enable"},
		"authenticated_with_password":               {Class: "authentication", Activity: "logon"},
		"login_failed_with_standard_authentication": {Class: "authentication", Activity: "logon", Status: "failure"},
		"member_created":                            {Class: "group_management", Activity: "add_user"},
		"group_created":                             {Class: "entity_management", Activity: "create"},
		"repository_git_operation":                  {Class: "api_activity", Activity: "read"},
	} {
		require.Equal(t, want, c.Lookup(name).OCSF, name)
	}
}

func keys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestOCSFMappingValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		m    event.OCSFMapping
		want string // "" means valid
	}{
		{event.OCSFMapping{Class: "account_change", Activity: "mfa_factor_disable"}, ""},
		{event.OCSFMapping{Class: "api_activity", Activity: "other"}, ""},
		{event.OCSFMapping{Class: "authentication", Activity: "logon", Status: "failure"}, ""},
		{event.OCSFMapping{Class: "account_changes", Activity: "create"}, `ocsf.class "account_changes" must be one of account_change, api_activity, authentication, entity_management, group_management`},
		{event.OCSFMapping{Class: "authentication", Activity: "create"}, `ocsf.activity "create" is not an activity of authentication`},
		{event.OCSFMapping{Class: "api_activity", Activity: ""}, `ocsf.activity "" is not an activity of api_activity`},
		{event.OCSFMapping{Class: "api_activity", Activity: "read", Status: "success"}, `ocsf.status "success" must be failure or left out`},
	} {
		err := tc.m.Validate()
		if tc.want == "" {
			require.NoError(t, err, tc.m)
			continue
		}
		require.ErrorContains(t, err, tc.want, tc.m)
	}
}

func TestOCSFClassesAreOCSF(t *testing.T) {
	t.Parallel()
	// The uids of OCSF 1.3.0 (class_uid = category_uid*1000 + the class's uid in its category).
	for name, uid := range map[string]int{"account_change": 3001, "authentication": 3002,
		"entity_management": 3004, "group_management": 3006, "api_activity": 6003} {
		c := event.LookupOCSFClass(name)
		require.NotNil(t, c, name)
		require.Equal(t, uid, c.UID, name)
		require.Equal(t, uid/1000, c.CategoryUID, name)
		require.Equal(t, event.OCSFOther, c.Activities["other"])
		for a, id := range c.Activities {
			require.NotEmpty(t, c.ActivityCaptions[id], "%s.%s", name, a)
		}
	}
	require.Equal(t, 11, event.LookupOCSFClass("account_change").Activities["mfa_factor_disable"])
	require.Equal(t, 3, event.LookupOCSFClass("group_management").Activities["add_user"])
	require.Nil(t, event.LookupOCSFClass("base_event"))
}

func TestParseTypeOCSF(t *testing.T) {
	t.Parallel()
	typ, err := event.ParseType([]byte(customType + "ocsf: {class: entity_management, activity: update}\n"))
	require.NoError(t, err)
	require.Equal(t, event.OCSFMapping{Class: "entity_management", Activity: "update"}, typ.OCSF)

	_, err = event.ParseType([]byte(customType + "ocsf: {class: entity_management, activity: logon}\n"))
	require.ErrorContains(t, err, `ocsf.activity "logon" is not an activity of entity_management`)
	_, err = event.ParseType([]byte(customType + "ocsf: {class: entity_management, activity: update, severity: high}\n"))
	require.ErrorContains(t, err, "field severity not found")

	// A definition without one parses (GitLab's files have none); Load decides whether it may.
	typ, err = event.ParseType([]byte(customType))
	require.NoError(t, err)
	require.True(t, typ.OCSF.IsZero())
}

func TestCatalogLoadOperatorTypesOCSF(t *testing.T) {
	t.Parallel()
	dir := writeTypes(t, map[string]string{
		// A new type without a mapping loads: it is written with the formats' fallback.
		"custom_thing_happened.yml": customType,
		// An override copied from GitLab (no ocsf key) keeps the embedded mapping.
		"user_created.yml": strings.ReplaceAll(customType, "custom_thing_happened", "user_created"),
		// An override may change the mapping.
		"group_created.yml": strings.ReplaceAll(customType, "custom_thing_happened", "group_created") +
			"ocsf: {class: group_management, activity: create}\n",
	})
	c, err := event.Load(dir)
	require.NoError(t, err)
	require.True(t, c.Lookup("custom_thing_happened").OCSF.IsZero())
	require.Equal(t, event.OCSFMapping{Class: "account_change", Activity: "create"}, c.Lookup("user_created").OCSF)
	require.Equal(t, "A custom thing happened.", c.Lookup("user_created").Description)
	require.Equal(t, event.OCSFMapping{Class: "group_management", Activity: "create"}, c.Lookup("group_created").OCSF)

	bad := writeTypes(t, map[string]string{
		"custom_thing_happened.yml": customType + "ocsf: {class: api, activity: read}\n",
	})
	_, err = event.Load(bad)
	require.ErrorContains(t, err, "custom_thing_happened.yml")
	require.ErrorContains(t, err, `ocsf.class "api" must be one of`)
}
