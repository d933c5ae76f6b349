package destination_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/event"
)

// exprEvent is the event the expression tests match against.
func exprEvent() *event.Event {
	return &event.Event{
		ID:         7,
		AuthorID:   42,
		AuthorName: "Ada Admin",
		EntityID:   1001,
		EntityType: "Project",
		EntityPath: "acme/tools/cli",
		Details: []byte(`{"custom_message":"rotated a token","count":3,"ok":true,` +
			`"nested":{"list":["a","b"],"deep":{"level":2}},"none":null}`),
		IPAddress:  "10.1.2.3",
		TargetID:   []byte(`555`),
		TargetType: "PersonalAccessToken",
		CreatedAt:  time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC),
		EventType:  tGit,
	}
}

func TestExpressionCompileErrors(t *testing.T) {
	t.Parallel()
	cat := setup(t)
	for _, tc := range []struct {
		name, expr, code, msg string
	}{
		{"syntax", `event_type == `, destination.CodeInvalidExpression, "Syntax error"},
		{"unknown variable", `author_email == "a@b"`, destination.CodeInvalidExpression, "undeclared reference to 'author_email'"},
		{"wrong type", `author_id == "42"`, destination.CodeInvalidExpression, "no matching overload"},
		{"not bool", `author_name + "x"`, destination.CodeNotBool, "string"},
		{"int result", `author_id`, destination.CodeNotBool, "int"},
		{"dyn result", `details.ok`, destination.CodeNotBool, "dyn"},
		{"too costly", `details.exists(k, details.exists(j, string(details[k]).matches(string(details[j]))))`, destination.CodeTooCostly, "may cost up to"},
		{"too long", `true` + strings.Repeat(" && true", destination.MaxExpressionLength/8), destination.CodeTooCostly, "bytes long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := destination.Compile(destination.FilterSpec{Expression: tc.expr}, cat)
			require.Nil(t, f)
			require.Error(t, err)
			errs := destination.FilterErrors(err)
			require.Len(t, errs, 1)
			require.Equal(t, destination.FieldExpression, errs[0].Field)
			require.Equal(t, tc.code, errs[0].Code)
			require.Contains(t, errs[0].Value, tc.msg)
			require.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestExpressionReportedWithOtherErrors(t *testing.T) {
	t.Parallel()
	_, err := destination.Compile(destination.FilterSpec{EventTypes: []string{"no_such_type"}, Expression: "1"}, setup(t))
	codes := []string{}
	for _, e := range destination.FilterErrors(err) {
		codes = append(codes, e.Code)
	}
	require.Equal(t, []string{destination.CodeUnknownEventType, destination.CodeNotBool}, codes)
}

func TestExpressionVariables(t *testing.T) {
	t.Parallel()
	cat := setup(t)
	ev := exprEvent()
	for _, tc := range []struct {
		expr string
		want bool
	}{
		{`event_type == "repository_git_operation"`, true},
		{`event_type == "group_created"`, false},
		{`entity_type == "Project"`, true},
		{`entity_path.startsWith("acme/")`, true},
		{`entity_path.startsWith("other/")`, false},
		{`entity_id == 1001`, true},
		{`author_id == 42`, true},
		{`author_id == 43`, false},
		{`author_name.contains("Ada")`, true},
		{`target_type == "PersonalAccessToken"`, true},
		{`target_id == "555"`, true},
		{`ip_address.startsWith("10.")`, true},
		{`!ip_address.startsWith("10.")`, false},
		{`created_at > timestamp("2026-01-01T00:00:00Z")`, true},
		{`created_at.getFullYear() == 2025`, false},
		{`details.custom_message.contains("token") && !ip_address.startsWith("10.")`, false},
		{`details.custom_message.contains("token")`, true},
		{`details.count == 3`, true},
		{`details.ok == true`, true},
		{`bool(details.ok)`, true},
		{`details.nested.list[1] == "b"`, true},
		{`details.nested.deep.level > 1`, true},
		{`details.none == null`, true},
		{`has(details.missing)`, false},
		{`!has(details.missing)`, true},
		{`"custom_message" in details`, true},
		// A missing key is an evaluation error: not taken, whichever way it is negated.
		{`details.missing == "x"`, false},
		{`details.missing != "x"`, false},
		{`details.nested.nope.deeper == 1`, false},
		// A value of an unexpected type is an error too.
		{`details.custom_message > 3`, false},
		// CEL's || and && absorb errors when the other side decides.
		{`details.missing == "x" || author_id == 42`, true},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			t.Parallel()
			f := compile(t, cat, destination.FilterSpec{Expression: tc.expr})
			require.True(t, f.NeedsEvent())
			require.False(t, f.IsEmpty())
			require.Equal(t, tc.want, f.Match(destination.EventInfo{EventType: ev.EventType, Vars: destination.VarsOf(ev)}))
			// The same from the event's JSON, as the delivery engine has it.
			require.Equal(t, tc.want, f.Match(destination.EventInfo{EventType: ev.EventType, Vars: destination.NewVars(ev.AppendJSON(nil))}))
		})
	}
}

func TestExpressionAfterOtherFilters(t *testing.T) {
	t.Parallel()
	cat := setup(t)
	ev := exprEvent()
	f := compile(t, cat, destination.FilterSpec{EventTypes: []string{tGroupCreated}, Expression: `true`})
	require.False(t, f.Match(destination.EventInfo{EventType: tGit, Vars: destination.VarsOf(ev)}))
	f = compile(t, cat, destination.FilterSpec{EventTypes: []string{tGit}, Expression: ` author_id == 42 `})
	require.True(t, f.Match(destination.EventInfo{EventType: tGit, Vars: destination.VarsOf(ev)}))
	require.Equal(t, "author_id == 42", f.Spec().Expression, "the spec is trimmed")
	// No event at all: every field is empty.
	require.False(t, f.Match(destination.EventInfo{EventType: tGit}))
	// Invalid JSON: every field is empty too.
	require.False(t, f.Match(destination.EventInfo{EventType: tGit, Vars: destination.NewVars([]byte(`{`))}))
	// White space only is no expression.
	f = compile(t, cat, destination.FilterSpec{Expression: " \n"})
	require.True(t, f.IsEmpty())
	require.False(t, f.NeedsEvent())
}

func TestExpressionTargetID(t *testing.T) {
	t.Parallel()
	cat := setup(t)
	f := compile(t, cat, destination.FilterSpec{Expression: `target_id == "abc"`})
	ev := exprEvent()
	ev.TargetID = []byte(`"abc"`)
	require.True(t, f.Match(destination.EventInfo{Vars: destination.VarsOf(ev)}))
	ev.TargetID = []byte(`null`)
	f = compile(t, cat, destination.FilterSpec{Expression: `target_id == ""`})
	require.True(t, f.Match(destination.EventInfo{Vars: destination.VarsOf(ev)}))
}

// FuzzExpression checks that compiling and evaluating any expression on any event never
// panics, and that a compiled expression gives a bool.
func FuzzExpression(f *testing.F) {
	cat := setup(f)
	f.Add(`details.custom_message.contains("token") && !ip_address.startsWith("10.")`, `{"details":{"custom_message":"x"},"ip_address":"1.2.3.4"}`)
	f.Add(`details.a.b[0] == 1`, `{"details":{"a":{"b":[1]}}}`)
	f.Add(`created_at < timestamp("2020-01-01T00:00:00Z")`, `{"created_at":"2019-01-01T00:00:00Z"}`)
	f.Add(`int(target_id) > 3`, `{"target_id":"x"}`)
	f.Add(`details.exists(k, k.matches("^a"))`, `{"details":[1]}`)
	f.Add(`1/0 == 1`, `{}`)
	f.Fuzz(func(t *testing.T, expr, data string) {
		flt, err := destination.Compile(destination.FilterSpec{Expression: expr}, cat)
		if err != nil {
			require.NotEmpty(t, destination.FilterErrors(err))
			return
		}
		flt.Match(destination.EventInfo{Vars: destination.NewVars([]byte(data))})
	})
}

// typicalExpression is the example, used by the benchmarks.
const typicalExpression = `details.custom_message.contains("token") && !ip_address.startsWith("10.")`

// BenchmarkExpressionEval measures one evaluation of a typical expression on an event already
// decoded (the engine decodes once per event for all destinations).
func BenchmarkExpressionEval(b *testing.B) {
	f := compile(b, setup(b), destination.FilterSpec{Expression: typicalExpression})
	ev := exprEvent()
	ev.IPAddress = "192.0.2.1"
	vars := destination.VarsOf(ev)
	info := destination.EventInfo{EventType: ev.EventType, Vars: vars}
	require.True(b, f.Match(info))
	b.ReportAllocs()
	for b.Loop() {
		f.Match(info)
	}
}

// BenchmarkExpressionDecodeEval measures decoding the event's JSON and one evaluation: the cost
// for an event that only one destination with an expression reads.
func BenchmarkExpressionDecodeEval(b *testing.B) {
	f := compile(b, setup(b), destination.FilterSpec{Expression: typicalExpression})
	ev := exprEvent()
	ev.IPAddress = "192.0.2.1"
	data := ev.AppendJSON(nil)
	b.ReportAllocs()
	for b.Loop() {
		f.Match(destination.EventInfo{EventType: ev.EventType, Vars: destination.NewVars(data)})
	}
}

// BenchmarkFilterMatch compares a filter with event type and category filters, without and
// with a typical expression, on an event that the other filters take.
func BenchmarkFilterMatch(b *testing.B) {
	cat := setup(b)
	ev := exprEvent()
	ev.IPAddress = "192.0.2.1"
	spec := destination.FilterSpec{EventTypes: []string{tGit, tGroupCreated}, DenyCategories: []string{cUsers}}
	for _, tc := range []struct {
		name string
		expr string
	}{{"without", ""}, {"with", typicalExpression}} {
		b.Run(tc.name, func(b *testing.B) {
			s := spec
			s.Expression = tc.expr
			f := compile(b, cat, s)
			info := destination.EventInfo{EventType: ev.EventType, Category: category(cat, ev.EventType), Vars: destination.VarsOf(ev)}
			require.True(b, f.Match(info))
			b.ReportAllocs()
			for b.Loop() {
				f.Match(info)
			}
		})
	}
}

// BenchmarkFanOutFilters matches one event, as the delivery engine does, against 50
// destinations' filters, without and with a typical expression on every destination: the
// event's JSON is decoded at most once for all of them (only the filtering share of fan-out;
// sending is not in it).
func BenchmarkFanOutFilters(b *testing.B) {
	cat := setup(b)
	ev := exprEvent()
	ev.IPAddress = "192.0.2.1"
	data := ev.AppendJSON(nil)
	const destinations = 50
	for _, tc := range []struct {
		name string
		expr string
	}{{"without", ""}, {"with", typicalExpression}} {
		b.Run(tc.name, func(b *testing.B) {
			filters := make([]*destination.Filter, destinations)
			for i := range filters {
				filters[i] = compile(b, cat, destination.FilterSpec{DenyCategories: []string{cUsers}, Expression: tc.expr})
			}
			b.ReportAllocs()
			for b.Loop() {
				info := destination.EventInfo{EventType: ev.EventType, Category: category(cat, ev.EventType)}
				for _, f := range filters {
					if f.NeedsEvent() && info.Vars == nil {
						info.Vars = destination.NewVars(data)
					}
					if !f.Match(info) {
						b.Fatal("not taken")
					}
				}
			}
		})
	}
}

// TestExpressionRuntimeCostLimit: an expression with a macro whose estimate passes (the size
// hints) but which runs past MaxExpressionCost on a larger event stops, and the event is not
// taken.
func TestExpressionRuntimeCostLimit(t *testing.T) {
	t.Parallel()
	f := compile(t, setup(t), destination.FilterSpec{Expression: `details.list.all(x, x == "1")`})
	list := make([]string, 50_000) // against a hint of 256 entries
	for i := range list {
		list[i] = "1"
	}
	data, err := json.Marshal(map[string]any{"details": map[string]any{"list": list}})
	require.NoError(t, err)
	require.False(t, f.Match(destination.EventInfo{Vars: destination.NewVars(data)}))
	small, err := json.Marshal(map[string]any{"details": map[string]any{"list": list[:10]}})
	require.NoError(t, err)
	require.True(t, f.Match(destination.EventInfo{Vars: destination.NewVars(small)}))
}
