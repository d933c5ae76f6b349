package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/store"
)

func ptr[T any](v T) *T { return &v }

// destinationNamespaces creates two top-level groups, a subgroup of the first and a project in
// the subgroup.
func destinationNamespaces(t *testing.T, ctx context.Context, st store.Store) (g1, g2, sub, proj store.Namespace) {
	t.Helper()
	create := func(p store.NamespaceCreateParams) store.Namespace {
		t.Helper()
		p.CreatedAt = base
		n, err := st.NamespaceCreate(ctx, p)
		require.NoError(t, err)
		return n
	}
	g1 = create(store.NamespaceCreateParams{Kind: store.KindGroup, Name: "G1", FullPath: "g1"})
	g2 = create(store.NamespaceCreateParams{Kind: store.KindGroup, Name: "G2", FullPath: "g2"})
	sub = create(store.NamespaceCreateParams{Kind: store.KindGroup, Name: "Sub", FullPath: "g1/sub", ParentKey: g1.Key})
	proj = create(store.NamespaceCreateParams{Kind: store.KindProject, Name: "P", FullPath: "g1/sub/p", ParentKey: sub.Key})
	return g1, g2, sub, proj
}

// fullDestination returns params for a group destination of g that set every field.
func fullDestination(g, sub, proj store.Namespace, name string) store.DestinationCreateParams {
	return store.DestinationCreateParams{
		Scope:                 store.ScopeGroup,
		NamespaceKey:          g.Key,
		Name:                  name,
		Category:              "http",
		Config:                []byte(`{"url": "https://example.com/hook",  "b":1}` + "\n"),
		SecretToken:           "sealed:token",
		SigningSecret:         "sealed:whsec-new",
		PreviousSigningSecret: "sealed:whsec-old",
		PreviousValidUntil:    time.Date(2024, 3, 2, 14, 0, 0, 987654321, time.FixedZone("CEST", 2*3600)),
		Active:                true,
		Headers: []store.DestinationHeader{
			{Name: "X-Zeta", Value: "sealed:z", Active: true},
			{Name: "X-Alpha", Value: "sealed:a", Active: false},
			{Name: "Content-Type", Value: "sealed:ct", Active: true},
		},
		EventTypes:     []string{"user_created", "a_type", "project_created"},
		DenyEventTypes: []string{"member_removed"},
		Categories:     []string{"security", "auth"},
		DenyCategories: []string{"ci"},
		Namespaces:     []store.DestinationNamespace{{Key: sub.Key}, {Key: proj.Key, Project: true}, {Key: g.Key}},
		// Stored byte for byte: quotes, a newline, non-ASCII.
		FilterExpression: "details.custom_message.contains(\"tök'en\")\n&& !ip_address.startsWith('10.')",
		CreatedAt:        time.Date(2024, 3, 1, 14, 30, 15, 123456789, time.FixedZone("CEST", 2*3600)),
	}
}

// wantDestination is the destination p creates, as the store returns it, at Version 1. Its
// header and namespace filter IDs are those of got, the destination the store returned: the
// store assigns them (adoptIDs checks that they are set).
func wantDestination(t *testing.T, got store.Destination, p store.DestinationCreateParams) store.Destination {
	t.Helper()
	d := store.Destination{
		ID: got.ID, Version: 1, Scope: p.Scope, NamespaceKey: p.NamespaceKey, Name: p.Name, Category: p.Category, Config: p.Config,
		SecretToken: p.SecretToken, SigningSecret: p.SigningSecret, PreviousSigningSecret: p.PreviousSigningSecret,
		PreviousValidUntil: ms(p.PreviousValidUntil), Active: p.Active, Headers: p.Headers,
		EventTypes: p.EventTypes, DenyEventTypes: p.DenyEventTypes, Categories: p.Categories, DenyCategories: p.DenyCategories,
		Namespaces: p.Namespaces, FilterExpression: p.FilterExpression, CreatedAt: ms(p.CreatedAt), UpdatedAt: ms(p.CreatedAt),
	}
	nilIfEmpty(&d)
	adoptIDs(t, &d, got)
	return d
}

// adoptIDs gives the headers and namespace filters of want that have ID 0 the IDs of the entries
// at the same positions in got, after checking that those are set. want's lists are copied
// first, so that slices shared with params or other fixtures stay as they are. Entries of want
// with an ID keep it, for the comparison with got to check.
func adoptIDs(t *testing.T, want *store.Destination, got store.Destination) {
	t.Helper()
	want.Headers = slices.Clone(want.Headers)
	for i := range want.Headers {
		if want.Headers[i].ID == 0 && i < len(got.Headers) {
			require.Positive(t, got.Headers[i].ID, "header %d has an id", i)
			want.Headers[i].ID = got.Headers[i].ID
		}
	}
	want.Namespaces = slices.Clone(want.Namespaces)
	for i := range want.Namespaces {
		if want.Namespaces[i].ID == 0 && i < len(got.Namespaces) {
			require.Positive(t, got.Namespaces[i].ID, "namespace filter %d has an id", i)
			want.Namespaces[i].ID = got.Namespaces[i].ID
		}
	}
}

// nilIfEmpty makes the empty lists and Config of d nil, as the store returns them.
func nilIfEmpty(d *store.Destination) {
	if len(d.Config) == 0 {
		d.Config = nil
	}
	if len(d.Headers) == 0 {
		d.Headers = nil
	}
	for _, l := range []*[]string{&d.EventTypes, &d.DenyEventTypes, &d.Categories, &d.DenyCategories} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	if len(d.Namespaces) == 0 {
		d.Namespaces = nil
	}
}

func destinationIDs(ds []store.Destination) []int64 {
	out := make([]int64, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func (s *suite) testDestinationRoundTrip(t *testing.T) {
	ctx, st := s.setup(t)
	g1, _, sub, proj := destinationNamespaces(t, ctx, st)

	p := fullDestination(g1, sub, proj, "Audit sink ü")
	d, err := st.DestinationCreate(ctx, p)
	require.NoError(t, err)
	require.Positive(t, d.ID)
	want := wantDestination(t, d, p)
	require.Equal(t, time.Date(2024, 3, 1, 12, 30, 15, 123000000, time.UTC), want.CreatedAt)
	require.Equal(t, want, d)

	got, err := st.DestinationGet(ctx, d.ID)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, string(p.Config), string(got.Config), "config is returned byte for byte")
	list, err := st.DestinationList(ctx, store.DestinationListParams{Scope: store.ScopeGroup, NamespaceKey: g1.Key})
	require.NoError(t, err)
	require.Equal(t, []store.Destination{want}, list)

	// Empty lists come back nil, whether given as nil or empty; so does an empty config, and
	// no grace period stays none.
	tests := []struct {
		name string
		p    store.DestinationCreateParams
	}{
		{"nil lists", store.DestinationCreateParams{
			Scope: store.ScopeInstance, Name: "nil", Category: "aws", SecretToken: "s", SigningSecret: "w", CreatedAt: base,
		}},
		{"empty lists", store.DestinationCreateParams{
			Scope: store.ScopeInstance, Name: "empty", Category: "gcp", Config: []byte{}, SecretToken: "s", SigningSecret: "w",
			Headers: []store.DestinationHeader{}, EventTypes: []string{}, DenyEventTypes: []string{}, Categories: []string{},
			DenyCategories: []string{}, Namespaces: []store.DestinationNamespace{}, CreatedAt: base,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := st.DestinationCreate(ctx, tt.p)
			require.NoError(t, err)
			want := store.Destination{
				ID: d.ID, Version: 1, Scope: store.ScopeInstance, Name: tt.p.Name, Category: tt.p.Category,
				SecretToken: "s", SigningSecret: "w", CreatedAt: base, UpdatedAt: base,
			}
			require.Equal(t, want, d)
			got, err := st.DestinationGet(ctx, d.ID)
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}

	// A zero CreatedAt means now, and UpdatedAt starts equal to it.
	before := time.Now().Truncate(time.Millisecond)
	now, err := st.DestinationCreate(ctx, store.DestinationCreateParams{Scope: store.ScopeGroup, NamespaceKey: g1.Key, Name: "now", Category: "http"})
	require.NoError(t, err)
	after := time.Now()
	require.Equal(t, time.UTC, now.CreatedAt.Location())
	require.False(t, now.CreatedAt.Before(before) || now.CreatedAt.After(after), "%v not in [%v, %v]", now.CreatedAt, before, after)
	require.Equal(t, now.CreatedAt, now.UpdatedAt)
}

func (s *suite) testDestinationConflict(t *testing.T) {
	ctx, st := s.setup(t)
	g1, g2, sub, proj := destinationNamespaces(t, ctx, st)

	group := func(g store.Namespace, name string) store.DestinationCreateParams {
		return store.DestinationCreateParams{Scope: store.ScopeGroup, NamespaceKey: g.Key, Name: name, Category: "http", CreatedAt: base}
	}
	instance := func(name string) store.DestinationCreateParams {
		return store.DestinationCreateParams{Scope: store.ScopeInstance, Name: name, Category: "http", CreatedAt: base}
	}
	with := func(p store.DestinationCreateParams, f func(*store.DestinationCreateParams)) store.DestinationCreateParams {
		f(&p)
		return p
	}
	_, err := st.DestinationCreate(ctx, group(g1, "a"))
	require.NoError(t, err)

	tests := []struct {
		name string
		p    store.DestinationCreateParams
		want error
	}{
		{"same name same group", group(g1, "a"), store.ErrConflict},
		{"same name same group, other fields", fullDestination(g1, sub, proj, "a"), store.ErrConflict},
		{"same name other group", group(g2, "a"), nil},
		{"same name instance scope", instance("a"), nil},
		{"same name instance scope again", instance("a"), store.ErrConflict},
		{"same name same group other category", with(group(g1, "a"), func(p *store.DestinationCreateParams) { p.Category = "aws" }), nil},
		{"same name same group other category again", with(group(g1, "a"), func(p *store.DestinationCreateParams) { p.Category = "aws" }), store.ErrConflict},
		{"same name instance scope other category", with(instance("a"), func(p *store.DestinationCreateParams) { p.Category = "gcp" }), nil},
		{"other name same group", group(g1, "b"), nil},
		{"names are case sensitive", group(g1, "A"), nil},
		{"group missing", group(store.Namespace{Key: proj.Key + 1000}, "a"), store.ErrNotFound},
		{"duplicate header name", with(group(g1, "c"), func(p *store.DestinationCreateParams) {
			p.Headers = []store.DestinationHeader{{Name: "X-A", Value: "1"}, {Name: "X-A", Value: "2"}}
		}), store.ErrConflict},
		{"duplicate event type", with(group(g1, "c"), func(p *store.DestinationCreateParams) {
			p.EventTypes = []string{"x", "y", "x"}
		}), store.ErrConflict},
		{"duplicate deny category", with(group(g1, "c"), func(p *store.DestinationCreateParams) {
			p.DenyCategories = []string{"x", "x"}
		}), store.ErrConflict},
		{"duplicate namespace filter", with(group(g1, "c"), func(p *store.DestinationCreateParams) {
			p.Namespaces = []store.DestinationNamespace{{Key: sub.Key}, {Key: sub.Key}}
		}), store.ErrConflict},
		{"namespace filter missing", with(group(g1, "c"), func(p *store.DestinationCreateParams) {
			p.Namespaces = []store.DestinationNamespace{{Key: sub.Key}, {Key: proj.Key + 1000, Project: true}}
		}), store.ErrNotFound},
		// The four filter lists are apart: one value may be in several.
		{"one value in every list", with(group(g1, "d"), func(p *store.DestinationCreateParams) {
			p.EventTypes, p.DenyEventTypes, p.Categories, p.DenyCategories = []string{"x"}, []string{"x"}, []string{"x"}, []string{"x"}
		}), nil},
	}
	for _, tt := range tests {
		_, err := st.DestinationCreate(ctx, tt.p)
		if tt.want == nil {
			require.NoError(t, err, tt.name)
		} else {
			require.ErrorIs(t, err, tt.want, tt.name)
		}
	}

	for _, c := range []struct {
		scope store.DestinationScope
		key   int64
		want  int64
	}{{store.ScopeGroup, g1.Key, 5}, {store.ScopeGroup, g2.Key, 1}, {store.ScopeInstance, 0, 2}} {
		n, err := st.DestinationCount(ctx, c.scope, c.key)
		require.NoError(t, err)
		require.Equal(t, c.want, n, "%s %d: failed creates leave nothing behind", c.scope, c.key)
	}
	d, err := st.DestinationCreate(ctx, group(g1, "c"))
	require.NoError(t, err, "the name of a failed create is free")
	require.Nil(t, d.Headers)
	require.Nil(t, d.EventTypes)
	require.Nil(t, d.Namespaces)
}

func (s *suite) testDestinationInvalid(t *testing.T) {
	ctx, st := s.setup(t)
	g1, _, _, _ := destinationNamespaces(t, ctx, st)

	creates := []struct {
		name string
		p    store.DestinationCreateParams
	}{
		{"no scope", store.DestinationCreateParams{NamespaceKey: g1.Key, Name: "a", Category: "http"}},
		{"unknown scope", store.DestinationCreateParams{Scope: "project", NamespaceKey: g1.Key, Name: "a", Category: "http"}},
		{"group without key", store.DestinationCreateParams{Scope: store.ScopeGroup, Name: "a", Category: "http"}},
		{"instance with key", store.DestinationCreateParams{Scope: store.ScopeInstance, NamespaceKey: g1.Key, Name: "a", Category: "http"}},
		{"no name", store.DestinationCreateParams{Scope: store.ScopeGroup, NamespaceKey: g1.Key, Category: "http"}},
		{"no category", store.DestinationCreateParams{Scope: store.ScopeGroup, NamespaceKey: g1.Key, Name: "a"}},
		{"empty header name", store.DestinationCreateParams{Scope: store.ScopeGroup, NamespaceKey: g1.Key, Name: "a", Category: "http",
			Headers: []store.DestinationHeader{{Name: "", Value: "v"}}}},
		{"empty event type", store.DestinationCreateParams{Scope: store.ScopeGroup, NamespaceKey: g1.Key, Name: "a", Category: "http",
			EventTypes: []string{""}}},
	}
	for _, tt := range creates {
		_, err := st.DestinationCreate(ctx, tt.p)
		require.Error(t, err, tt.name)
	}
	lists := []struct {
		name string
		p    store.DestinationListParams
	}{
		{"key without scope", store.DestinationListParams{NamespaceKey: g1.Key}},
		{"group without key", store.DestinationListParams{Scope: store.ScopeGroup}},
		{"instance with key", store.DestinationListParams{Scope: store.ScopeInstance, NamespaceKey: g1.Key}},
		{"unknown scope", store.DestinationListParams{Scope: "project", NamespaceKey: g1.Key}},
	}
	for _, tt := range lists {
		_, err := st.DestinationList(ctx, tt.p)
		require.Error(t, err, tt.name)
		_, err = st.DestinationCount(ctx, tt.p.Scope, tt.p.NamespaceKey)
		require.Error(t, err, tt.name)
	}
	n, err := st.DestinationCount(ctx, store.ScopeGroup, g1.Key)
	require.NoError(t, err)
	require.Zero(t, n)
}

func (s *suite) testDestinationList(t *testing.T) {
	ctx, st := s.setup(t)
	g1, g2, sub, proj := destinationNamespaces(t, ctx, st)

	create := func(p store.DestinationCreateParams) store.Destination {
		t.Helper()
		d, err := st.DestinationCreate(ctx, p)
		require.NoError(t, err)
		return d
	}
	simple := func(scope store.DestinationScope, key int64, name string, active bool) store.DestinationCreateParams {
		return store.DestinationCreateParams{Scope: scope, NamespaceKey: key, Name: name, Category: "splunk", Active: active,
			EventTypes: []string{name + "_type"}, CreatedAt: base}
	}
	// Created interleaved, so that id order is not grouped by owner.
	g1a := create(fullDestination(g1, sub, proj, "g1a"))
	instX := create(simple(store.ScopeInstance, 0, "x", true))
	g2a := create(simple(store.ScopeGroup, g2.Key, "g1a", true))
	g1b := create(simple(store.ScopeGroup, g1.Key, "g1b", false))
	instY := create(simple(store.ScopeInstance, 0, "y", false))
	g1c := create(simple(store.ScopeGroup, g1.Key, "g1c", true))

	all, err := st.DestinationList(ctx, store.DestinationListParams{})
	require.NoError(t, err)
	require.Equal(t, []store.Destination{g1a, instX, g2a, g1b, instY, g1c}, all, "every field, headers and filters of each")

	tests := []struct {
		name string
		p    store.DestinationListParams
		want []int64
	}{
		{"all", store.DestinationListParams{}, destinationIDs(all)},
		{"all active", store.DestinationListParams{ActiveOnly: true}, []int64{g1a.ID, instX.ID, g2a.ID, g1c.ID}},
		{"group", store.DestinationListParams{Scope: store.ScopeGroup, NamespaceKey: g1.Key}, []int64{g1a.ID, g1b.ID, g1c.ID}},
		{"group active", store.DestinationListParams{Scope: store.ScopeGroup, NamespaceKey: g1.Key, ActiveOnly: true}, []int64{g1a.ID, g1c.ID}},
		{"other group", store.DestinationListParams{Scope: store.ScopeGroup, NamespaceKey: g2.Key}, []int64{g2a.ID}},
		{"group without destinations", store.DestinationListParams{Scope: store.ScopeGroup, NamespaceKey: sub.Key}, []int64{}},
		{"group that does not exist", store.DestinationListParams{Scope: store.ScopeGroup, NamespaceKey: proj.Key + 1000}, []int64{}},
		{"instance", store.DestinationListParams{Scope: store.ScopeInstance}, []int64{instX.ID, instY.ID}},
		{"instance active", store.DestinationListParams{Scope: store.ScopeInstance, ActiveOnly: true}, []int64{instX.ID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := st.DestinationList(ctx, tt.p)
			require.NoError(t, err)
			require.Equal(t, tt.want, destinationIDs(got))
			for _, d := range got {
				want, err := st.DestinationGet(ctx, d.ID)
				require.NoError(t, err)
				require.Equal(t, want, d, "a listed destination is complete")
			}
		})
	}

	counts := []struct {
		scope store.DestinationScope
		key   int64
		want  int64
	}{
		{store.ScopeGroup, g1.Key, 3},
		{store.ScopeGroup, g2.Key, 1},
		{store.ScopeGroup, sub.Key, 0},
		{store.ScopeInstance, 0, 2},
	}
	for _, c := range counts {
		n, err := st.DestinationCount(ctx, c.scope, c.key)
		require.NoError(t, err)
		require.Equal(t, c.want, n, "%s %d", c.scope, c.key)
	}
}

func (s *suite) testDestinationUpdate(t *testing.T) {
	ctx, st := s.setup(t)
	g1, g2, sub, proj := destinationNamespaces(t, ctx, st)

	// A sibling in the same group must come through every update untouched.
	sibling, err := st.DestinationCreate(ctx, fullDestination(g1, sub, proj, "sibling"))
	require.NoError(t, err)

	newUntil := time.Date(2024, 5, 1, 0, 0, 0, 555555555, time.UTC)
	headers := []store.DestinationHeader{
		{Name: "Content-Type", Value: "sealed:ct2", Active: false}, // kept name, new position and value
		{Name: "X-New", Value: "sealed:new", Active: true},
	}
	tests := []struct {
		name string
		p    store.DestinationUpdateParams
		want func(d *store.Destination)
	}{
		{"nothing", store.DestinationUpdateParams{}, func(d *store.Destination) {}},
		{"name", store.DestinationUpdateParams{Name: ptr("renamed")}, func(d *store.Destination) { d.Name = "renamed" }},
		{"name taken in another group", store.DestinationUpdateParams{Name: ptr("elsewhere")}, func(d *store.Destination) { d.Name = "elsewhere" }},
		{"category", store.DestinationUpdateParams{Category: ptr("gcs")}, func(d *store.Destination) { d.Category = "gcs" }},
		{"config", store.DestinationUpdateParams{Config: ptr([]byte(`{"url":"https://other.example"}`))}, func(d *store.Destination) {
			d.Config = []byte(`{"url":"https://other.example"}`)
		}},
		{"config emptied", store.DestinationUpdateParams{Config: ptr([]byte(nil))}, func(d *store.Destination) { d.Config = nil }},
		{"secret token", store.DestinationUpdateParams{SecretToken: ptr("sealed:token2")}, func(d *store.Destination) { d.SecretToken = "sealed:token2" }},
		{"signing secret", store.DestinationUpdateParams{SigningSecret: ptr("sealed:whsec3")}, func(d *store.Destination) { d.SigningSecret = "sealed:whsec3" }},
		{"previous signing secret", store.DestinationUpdateParams{PreviousSigningSecret: ptr("sealed:prev")}, func(d *store.Destination) {
			d.PreviousSigningSecret = "sealed:prev"
		}},
		{"previous valid until", store.DestinationUpdateParams{PreviousValidUntil: ptr(newUntil)}, func(d *store.Destination) {
			d.PreviousValidUntil = ms(newUntil)
		}},
		{"rotation grace ended", store.DestinationUpdateParams{PreviousSigningSecret: ptr(""), PreviousValidUntil: ptr(time.Time{})}, func(d *store.Destination) {
			d.PreviousSigningSecret, d.PreviousValidUntil = "", time.Time{}
		}},
		{"active", store.DestinationUpdateParams{Active: ptr(false)}, func(d *store.Destination) { d.Active = false }},
		{"headers", store.DestinationUpdateParams{Headers: &headers}, func(d *store.Destination) { d.Headers = headers }},
		{"headers emptied", store.DestinationUpdateParams{Headers: ptr([]store.DestinationHeader{})}, func(d *store.Destination) { d.Headers = nil }},
		{"headers emptied by nil", store.DestinationUpdateParams{Headers: ptr([]store.DestinationHeader(nil))}, func(d *store.Destination) { d.Headers = nil }},
		{"event types", store.DestinationUpdateParams{EventTypes: ptr([]string{"project_created", "z_type"})}, func(d *store.Destination) {
			d.EventTypes = []string{"project_created", "z_type"}
		}},
		{"event types emptied", store.DestinationUpdateParams{EventTypes: ptr([]string{})}, func(d *store.Destination) { d.EventTypes = nil }},
		{"deny event types", store.DestinationUpdateParams{DenyEventTypes: ptr([]string{"a", "b"})}, func(d *store.Destination) {
			d.DenyEventTypes = []string{"a", "b"}
		}},
		{"deny event types emptied", store.DestinationUpdateParams{DenyEventTypes: ptr([]string(nil))}, func(d *store.Destination) { d.DenyEventTypes = nil }},
		{"categories", store.DestinationUpdateParams{Categories: ptr([]string{"auth"})}, func(d *store.Destination) { d.Categories = []string{"auth"} }},
		{"categories emptied", store.DestinationUpdateParams{Categories: ptr([]string{})}, func(d *store.Destination) { d.Categories = nil }},
		{"deny categories", store.DestinationUpdateParams{DenyCategories: ptr([]string{"ci", "security"})}, func(d *store.Destination) {
			d.DenyCategories = []string{"ci", "security"}
		}},
		{"deny categories emptied", store.DestinationUpdateParams{DenyCategories: ptr([]string{})}, func(d *store.Destination) { d.DenyCategories = nil }},
		{"namespaces", store.DestinationUpdateParams{Namespaces: ptr([]store.DestinationNamespace{{Key: proj.Key, Project: true}})}, func(d *store.Destination) {
			d.Namespaces = []store.DestinationNamespace{{Key: proj.Key, Project: true}}
		}},
		{"namespaces emptied", store.DestinationUpdateParams{Namespaces: ptr([]store.DestinationNamespace{})}, func(d *store.Destination) { d.Namespaces = nil }},
		{"filter expression", store.DestinationUpdateParams{FilterExpression: ptr(`author_id == 1`)}, func(d *store.Destination) {
			d.FilterExpression = `author_id == 1`
		}},
		{"filter expression cleared", store.DestinationUpdateParams{FilterExpression: ptr("")}, func(d *store.Destination) { d.FilterExpression = "" }},
		{"everything", store.DestinationUpdateParams{
			Name: ptr("all new"), Category: ptr("aws"), Config: ptr([]byte(`{}`)), SecretToken: ptr("t"), SigningSecret: ptr("w"),
			PreviousSigningSecret: ptr("p"), PreviousValidUntil: ptr(newUntil), Active: ptr(false), Headers: &headers,
			EventTypes: ptr([]string{"e"}), DenyEventTypes: ptr([]string{}), Categories: ptr([]string{"c"}), DenyCategories: ptr([]string{"dc"}),
			Namespaces: ptr([]store.DestinationNamespace{{Key: sub.Key}}), FilterExpression: ptr("true"),
		}, func(d *store.Destination) {
			d.FilterExpression = "true"
			d.Name, d.Category, d.Config, d.SecretToken, d.SigningSecret = "all new", "aws", []byte(`{}`), "t", "w"
			d.PreviousSigningSecret, d.PreviousValidUntil, d.Active, d.Headers = "p", ms(newUntil), false, headers
			d.EventTypes, d.DenyEventTypes, d.Categories, d.DenyCategories = []string{"e"}, nil, []string{"c"}, []string{"dc"}
			d.Namespaces = []store.DestinationNamespace{{Key: sub.Key}}
		}},
	}
	_, err = st.DestinationCreate(ctx, store.DestinationCreateParams{Scope: store.ScopeGroup, NamespaceKey: g2.Key, Name: "elsewhere", Category: "http"})
	require.NoError(t, err)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig, err := st.DestinationCreate(ctx, fullDestination(g1, sub, proj, fmt.Sprintf("d%d", i)))
			require.NoError(t, err)

			p := tt.p
			p.ID = orig.ID
			p.UpdatedAt = base.Add(time.Duration(i+1)*time.Hour + 123*time.Microsecond)
			got, err := st.DestinationUpdate(ctx, p)
			require.NoError(t, err)
			want := orig
			tt.want(&want)
			want.Version = orig.Version + 1
			want.UpdatedAt = ms(p.UpdatedAt)
			adoptIDs(t, &want, got)
			require.Equal(t, want, got)

			got, err = st.DestinationGet(ctx, orig.ID)
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}

	got, err := st.DestinationGet(ctx, sibling.ID)
	require.NoError(t, err)
	require.Equal(t, sibling, got, "updates touch only their destination")

	// A zero UpdatedAt means now; CreatedAt never changes.
	before := time.Now().Truncate(time.Millisecond)
	got, err = st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: sibling.ID, Active: ptr(false)})
	require.NoError(t, err)
	after := time.Now()
	require.Equal(t, time.UTC, got.UpdatedAt.Location())
	require.False(t, got.UpdatedAt.Before(before) || got.UpdatedAt.After(after), "%v not in [%v, %v]", got.UpdatedAt, before, after)
	require.Equal(t, sibling.CreatedAt, got.CreatedAt)
}

func (s *suite) testDestinationUpdateErrors(t *testing.T) {
	ctx, st := s.setup(t)
	g1, g2, sub, proj := destinationNamespaces(t, ctx, st)

	d, err := st.DestinationCreate(ctx, fullDestination(g1, sub, proj, "d"))
	require.NoError(t, err)
	_, err = st.DestinationCreate(ctx, fullDestination(g1, sub, proj, "taken"))
	require.NoError(t, err)
	_, err = st.DestinationCreate(ctx, store.DestinationCreateParams{Scope: store.ScopeInstance, Name: "instance", Category: "http"})
	require.NoError(t, err)
	other, err := st.DestinationCreate(ctx, store.DestinationCreateParams{Scope: store.ScopeGroup, NamespaceKey: g2.Key, Name: "other", Category: "http"})
	require.NoError(t, err)

	tests := []struct {
		name string
		p    store.DestinationUpdateParams
		want error // nil: some error that is neither sentinel
	}{
		{"missing", store.DestinationUpdateParams{ID: other.ID + 1000, Name: ptr("x")}, store.ErrNotFound},
		{"missing, nothing set", store.DestinationUpdateParams{ID: other.ID + 1000}, store.ErrNotFound},
		{"rename to a taken name", store.DestinationUpdateParams{ID: d.ID, Name: ptr("taken")}, store.ErrConflict},
		// Every later part fails after the row was updated: the whole update is undone.
		{"duplicate header names", store.DestinationUpdateParams{ID: d.ID, Name: ptr("new"), Active: ptr(false),
			EventTypes: ptr([]string{"e"}),
			Headers:    ptr([]store.DestinationHeader{{Name: "X", Value: "1"}, {Name: "X", Value: "2"}})}, store.ErrConflict},
		{"duplicate category", store.DestinationUpdateParams{ID: d.ID, Name: ptr("new"), Headers: ptr([]store.DestinationHeader{}),
			Categories: ptr([]string{"c", "c"})}, store.ErrConflict},
		{"namespace filter missing", store.DestinationUpdateParams{ID: d.ID, Name: ptr("new"), DenyEventTypes: ptr([]string{}),
			Namespaces: ptr([]store.DestinationNamespace{{Key: proj.Key + 1000}})}, store.ErrNotFound},
		{"empty name", store.DestinationUpdateParams{ID: d.ID, Name: ptr(""), Active: ptr(false)}, nil},
		{"empty category", store.DestinationUpdateParams{ID: d.ID, Category: ptr(""), Active: ptr(false)}, nil},
		{"empty event type", store.DestinationUpdateParams{ID: d.ID, Name: ptr("new"), EventTypes: ptr([]string{""})}, nil},
	}
	for _, tt := range tests {
		_, err := st.DestinationUpdate(ctx, tt.p)
		require.Error(t, err, tt.name)
		if tt.want != nil {
			require.ErrorIs(t, err, tt.want, tt.name)
		} else {
			require.NotErrorIs(t, err, store.ErrNotFound, tt.name)
			require.NotErrorIs(t, err, store.ErrConflict, tt.name)
		}
		got, err := st.DestinationGet(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, d, got, "%s: a failed update changes nothing", tt.name)
	}

	// Scopes are apart: renaming to the name of an instance destination or of another group's.
	for _, name := range []string{"instance", "other"} {
		got, err := st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: d.ID, Name: ptr(name), UpdatedAt: base})
		require.NoError(t, err)
		require.Equal(t, name, got.Name)
	}
}

func (s *suite) testDestinationDelete(t *testing.T) {
	ctx, st := s.setup(t)
	g1, _, sub, proj := destinationNamespaces(t, ctx, st)

	a, err := st.DestinationCreate(ctx, fullDestination(g1, sub, proj, "a"))
	require.NoError(t, err)
	b, err := st.DestinationCreate(ctx, fullDestination(g1, sub, proj, "b"))
	require.NoError(t, err)
	inst, err := st.DestinationCreate(ctx, store.DestinationCreateParams{Scope: store.ScopeInstance, Name: "a", Category: "http"})
	require.NoError(t, err)

	count := func(scope store.DestinationScope, key int64) int64 {
		t.Helper()
		n, err := st.DestinationCount(ctx, scope, key)
		require.NoError(t, err)
		return n
	}
	require.EqualValues(t, 2, count(store.ScopeGroup, g1.Key))

	require.NoError(t, st.DestinationDelete(ctx, a.ID))
	_, err = st.DestinationGet(ctx, a.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, st.DestinationDelete(ctx, a.ID), store.ErrNotFound, "deleting twice")
	require.ErrorIs(t, st.DestinationDelete(ctx, inst.ID+1000), store.ErrNotFound)
	_, err = st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: a.ID, Active: ptr(false)})
	require.ErrorIs(t, err, store.ErrNotFound)

	require.EqualValues(t, 1, count(store.ScopeGroup, g1.Key))
	require.EqualValues(t, 1, count(store.ScopeInstance, 0))
	got, err := st.DestinationGet(ctx, b.ID)
	require.NoError(t, err)
	require.Equal(t, b, got, "the other destination keeps its headers and filters")
	list, err := st.DestinationList(ctx, store.DestinationListParams{})
	require.NoError(t, err)
	require.Equal(t, []store.Destination{b, inst}, list)

	// The name is free again, and the new destination inherits nothing.
	again, err := st.DestinationCreate(ctx, store.DestinationCreateParams{Scope: store.ScopeGroup, NamespaceKey: g1.Key, Name: "a", Category: "http", CreatedAt: base})
	require.NoError(t, err)
	require.Greater(t, again.ID, inst.ID, "ids are not reused")
	require.Equal(t, store.Destination{ID: again.ID, Version: 1, Scope: store.ScopeGroup, NamespaceKey: g1.Key, Name: "a", Category: "http", CreatedAt: base, UpdatedAt: base}, again)

	require.NoError(t, st.DestinationDelete(ctx, inst.ID))
	require.Zero(t, count(store.ScopeInstance, 0))
}

// testDestinationConcurrentCreate creates one name in one group, and one name at instance
// scope, from several goroutines at once: exactly one create of each succeeds.
func (s *suite) testDestinationConcurrentCreate(t *testing.T) {
	ctx, st := s.setup(t)
	g1, _, _, _ := destinationNamespaces(t, ctx, st)

	const workers = 8
	params := map[store.DestinationScope]store.DestinationCreateParams{
		store.ScopeGroup:    {Scope: store.ScopeGroup, NamespaceKey: g1.Key, Name: "same", Category: "http", EventTypes: []string{"a", "b"}},
		store.ScopeInstance: {Scope: store.ScopeInstance, Name: "same", Category: "http", Headers: []store.DestinationHeader{{Name: "X", Value: "v"}}},
	}
	var wg sync.WaitGroup
	errs := map[store.DestinationScope][]error{}
	var mu sync.Mutex
	for scope, p := range params {
		for range workers {
			wg.Go(func() {
				_, err := st.DestinationCreate(ctx, p)
				mu.Lock()
				errs[scope] = append(errs[scope], err)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	for scope, p := range params {
		ok := 0
		for _, err := range errs[scope] {
			if err == nil {
				ok++
				continue
			}
			require.ErrorIs(t, err, store.ErrConflict, scope)
		}
		require.Equal(t, 1, ok, scope)
		n, err := st.DestinationCount(ctx, scope, p.NamespaceKey)
		require.NoError(t, err)
		require.EqualValues(t, 1, n, scope)
	}
	list, err := st.DestinationList(ctx, store.DestinationListParams{})
	require.NoError(t, err)
	require.Len(t, list, 2)
	for _, d := range list {
		p := params[d.Scope]
		p.CreatedAt = d.CreatedAt
		require.Equal(t, wantDestination(t, d, p), d, "the winner was written whole")
	}
}
