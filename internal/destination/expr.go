package destination

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	celchecker "github.com/google/cel-go/checker"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"

	"github.com/auditstream/auditstream/internal/event"
)

// FieldExpression is the FilterError.Field of a problem with FilterSpec.Expression.
const FieldExpression = "filterExpression"

// Codes used in FilterError.Code for FilterSpec.Expression. FilterError.Value then holds the
// compiler's message.
const (
	// CodeInvalidExpression: the expression does not parse or does not type-check, for
	// example it names an unknown variable or compares a string with an int.
	CodeInvalidExpression = "invalid_expression"
	// CodeNotBool: the expression type-checks but its result is not a bool.
	CodeNotBool = "expression_not_bool"
	// CodeTooCostly: the expression's estimated worst-case cost exceeds MaxExpressionCost,
	// or its text is longer than MaxExpressionLength.
	CodeTooCostly = "expression_too_costly"
)

// Limits on FilterSpec.Expression.
const (
	// MaxExpressionLength bounds the expression's text, in bytes.
	MaxExpressionLength = 4096
	// MaxExpressionCost bounds the expression's cost in CEL's units (about one per simple
	// operation; string functions count their operands' length). Compile refuses an
	// expression whose estimated worst case exceeds it, assuming that a string in an event is
	// at most exprMaxString long and details holds at most exprMaxEntries entries. An
	// expression with a macro (exists, all, map, filter, ...) is also limited at evaluation:
	// one that runs past it anyway (on a larger event) stops with an error, and the event is
	// not taken.
	MaxExpressionCost = 100_000
)

// Size hints for the cost estimate: what the estimator assumes of an event whose sizes CEL
// cannot know. Ingest bounds the named fields at 255 or 1024 bytes; details values are free,
// so these are generous rather than exact.
const (
	exprMaxString  = 4096 // characters in a string, or entries in a list, in details
	exprMaxEntries = 256  // entries in the details map, or in a list or map nested in it
)

// The expression's variables: one per top-level key of the event that a filter may read.
// The names are the event's JSON keys.
const (
	varEventType  = "event_type"
	varEntityType = "entity_type"
	varEntityPath = "entity_path"
	varEntityID   = "entity_id"
	varAuthorID   = "author_id"
	varAuthorName = "author_name"
	varTargetType = "target_type"
	varTargetID   = "target_id"
	varIPAddress  = "ip_address"
	varDetails    = "details"
	varCreatedAt  = "created_at"
)

// exprEnv returns the one CEL environment that every expression is compiled in. It is built on
// first use and never changes; a cel.Env is safe for concurrent use.
var exprEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable(varEventType, cel.StringType),
		cel.Variable(varEntityType, cel.StringType),
		cel.Variable(varEntityPath, cel.StringType),
		cel.Variable(varEntityID, cel.IntType),
		cel.Variable(varAuthorID, cel.IntType),
		cel.Variable(varAuthorName, cel.StringType),
		cel.Variable(varTargetType, cel.StringType),
		cel.Variable(varTargetID, cel.StringType),
		cel.Variable(varIPAddress, cel.StringType),
		cel.Variable(varDetails, cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable(varCreatedAt, cel.TimestampType),
	)
})

// expr is a compiled expression filter. It is immutable and safe for concurrent use.
type expr struct {
	src string
	prg cel.Program
}

// compileExpr type-checks src, estimates its cost and builds its program. The error is a
// *FilterError with Field FieldExpression and the compiler's message as Value.
func compileExpr(src string) (*expr, *FilterError) {
	fail := func(code, msg string) (*expr, *FilterError) {
		return nil, &FilterError{Field: FieldExpression, Code: code, Value: msg}
	}
	if len(src) > MaxExpressionLength {
		return fail(CodeTooCostly, fmt.Sprintf("the expression is %d bytes long, at most %d allowed", len(src), MaxExpressionLength))
	}
	env, err := exprEnv()
	if err != nil {
		return fail(CodeInvalidExpression, "expression environment: "+err.Error())
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return fail(CodeInvalidExpression, iss.Err().Error())
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) {
		return fail(CodeNotBool, fmt.Sprintf("the expression's result is %s, it must be bool", t))
	}
	est, err := env.EstimateCost(ast, sizeHints{})
	if err != nil {
		return fail(CodeTooCostly, "estimating the cost: "+err.Error())
	}
	if est.Max > MaxExpressionCost {
		return fail(CodeTooCostly, fmt.Sprintf("the expression may cost up to %d, at most %d allowed", est.Max, MaxExpressionCost))
	}
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if len(celast.MatchDescendants(celast.NavigateAST(ast.NativeRep()), celast.KindMatcher(celast.ComprehensionKind))) > 0 {
		// Only a macro (exists, all, map, filter, ...) repeats work per element, so only then
		// can an event larger than the estimate's size hints cost much more than estimated.
		// Without one, the work is a fixed number of operations, each linear in operands
		// that ingest bounds, and the runtime tracker (which costs several times the
		// evaluation of a typical expression) is left out.
		opts = append(opts, cel.CostLimit(MaxExpressionCost))
	}
	prg, err := env.Program(ast, opts...)
	if err != nil {
		return fail(CodeInvalidExpression, err.Error())
	}
	return &expr{src: src, prg: prg}, nil
}

// match evaluates the expression on the event. Any evaluation error (a missing key in details,
// a value of the wrong type there, a cost over MaxExpressionCost) means false: the event is not
// taken. It never panics.
func (x *expr) match(v *Vars) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	out, _, err := x.prg.Eval(v)
	if err != nil {
		return false
	}
	b, isBool := out.(types.Bool)
	return isBool && bool(b)
}

// sizeHints gives the cost estimator an upper bound for sizes it cannot know: every string and
// list in an event.
type sizeHints struct{}

func (sizeHints) EstimateSize(n celchecker.AstNode) *celchecker.SizeEstimate {
	if p := n.Path(); len(p) == 1 && p[0] == varDetails {
		return &celchecker.SizeEstimate{Min: 0, Max: exprMaxEntries}
	}
	switch n.Type().Kind() {
	case types.MapKind:
		return &celchecker.SizeEstimate{Min: 0, Max: exprMaxEntries}
	default:
		return &celchecker.SizeEstimate{Min: 0, Max: exprMaxString}
	}
}

func (sizeHints) EstimateCallCost(function, overloadID string, target *celchecker.AstNode, args []celchecker.AstNode) *celchecker.CallEstimate {
	return nil
}

// Vars is one event as an expression sees it. It reads the event's JSON lazily: the first
// variable asked for finds every variable's JSON in one scan of the top-level keys, and each is
// converted only when asked for; details is a map that finds a key by scanning the details
// object, decoding only the value asked for. Several destinations' expressions share one
// Vars. It is not safe for concurrent use. A nil *Vars is an event with every field empty.
type Vars struct {
	data    []byte
	scanned bool
	raw     [numVars][]byte // the JSON of each variable in data; nil when absent
	details *detailsMap
}

// numVars is how many variables an expression has (varIndex's range).
const numVars = 11

// varIndex returns the index of the variable named name in Vars.raw, or -1.
func varIndex(name string) int {
	switch name {
	case varEventType:
		return 0
	case varEntityType:
		return 1
	case varEntityPath:
		return 2
	case varEntityID:
		return 3
	case varAuthorID:
		return 4
	case varAuthorName:
		return 5
	case varTargetType:
		return 6
	case varTargetID:
		return 7
	case varIPAddress:
		return 8
	case varDetails:
		return 9
	case varCreatedAt:
		return 10
	}
	return -1
}

// NewVars returns the variables of the event whose JSON (as event.Event.AppendJSON writes it,
// with or without id) is data. It does not copy data; the caller must not change it while the
// Vars is in use. Invalid JSON gives empty variables.
func NewVars(data []byte) *Vars { return &Vars{data: data} }

// VarsOf returns the variables of a decoded event.
func VarsOf(ev *event.Event) *Vars { return NewVars(ev.AppendJSON(nil)) }

func (v *Vars) scan() {
	if v.scanned {
		return
	}
	v.scanned = true
	_, err := event.Fields(v.data, func(key, value []byte) bool {
		if i := varIndex(string(key)); i >= 0 {
			v.raw[i] = value
		}
		return true
	})
	if err != nil {
		v.raw = [numVars][]byte{}
	}
}

// ResolveName returns the value of one of the expression's variables. It implements
// interpreter.Activation.
func (v *Vars) ResolveName(name string) (any, bool) {
	if v == nil {
		v = &Vars{scanned: true}
	}
	i := varIndex(name)
	if i < 0 {
		return nil, false
	}
	v.scan()
	raw := v.raw[i]
	switch name {
	case varEntityID, varAuthorID:
		n, _ := strconv.ParseInt(string(raw), 10, 64)
		return n, true
	case varTargetID:
		return targetID(raw), true
	case varCreatedAt:
		t, _ := time.Parse(time.RFC3339Nano, jsonString(raw))
		return t.UTC(), true
	case varDetails:
		if v.details == nil {
			v.details = &detailsMap{raw: raw}
		}
		return v.details, true
	}
	return jsonString(raw), true // ip_address null is ""
}

// Parent implements interpreter.Activation: there is none.
func (v *Vars) Parent() interpreter.Activation { return nil }

// jsonString returns the JSON string raw's contents, or "" when raw is not a string.
func jsonString(raw []byte) string {
	if len(raw) < 2 || raw[0] != '"' {
		return ""
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// targetID renders the event's target_id (a JSON number, string or null) as a string: the
// number as written, the string's contents, or "" for null or none.
func targetID(raw []byte) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if raw[0] == '"' {
		return jsonString(raw)
	}
	return string(raw)
}

// detailsMap is the event's details (a JSON object) as a CEL map. Numbers are doubles, as
// JSON has no integers; CEL compares them with ints by value. Anything that is not an object
// is an empty map. Finding a string key (what details.x and has(details.x) do) scans the
// object and decodes that value only, and remembers it for the other destinations'
// expressions; everything else (size, iteration, equality, other key types, more keys than it
// remembers) works on the whole map, decoded once.
type detailsMap struct {
	raw   []byte
	full  traits.Mapper
	found [4]foundKey // the keys found by scanning so far
	n     int
}

// foundKey is one key detailsMap.Find looked up by scanning, and what it found.
type foundKey struct {
	key string
	val ref.Val
	ok  bool
}

var _ traits.Mapper = (*detailsMap)(nil)

// all returns the whole map, decoding it on first use.
func (m *detailsMap) all() traits.Mapper {
	if m.full == nil {
		var d map[string]any
		if len(m.raw) > 0 {
			if err := json.Unmarshal(m.raw, &d); err != nil {
				d = nil
			}
		}
		if d == nil {
			d = map[string]any{}
		}
		m.full = types.DefaultTypeAdapter.NativeToValue(d).(traits.Mapper)
	}
	return m.full
}

// Find implements traits.Mapper.
func (m *detailsMap) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok || m.full != nil {
		return m.all().Find(key)
	}
	for _, f := range m.found[:m.n] {
		if f.key == string(k) {
			return f.val, f.ok
		}
	}
	if m.n == len(m.found) {
		return m.all().Find(key)
	}
	val, ok := m.scan(string(k))
	m.found[m.n] = foundKey{string(k), val, ok}
	m.n++
	return val, ok
}

// scan finds key in the details by scanning them, decoding only its value.
func (m *detailsMap) scan(k string) (ref.Val, bool) {
	key := types.String(k)
	var found []byte
	_, err := event.Fields(m.raw, func(name, value []byte) bool {
		if string(name) == k {
			found = value // the last of duplicate keys wins, as in encoding/json
		} else if bytes.IndexByte(name, '\\') >= 0 && jsonString(append(append([]byte{'"'}, name...), '"')) == k {
			found = value
		}
		return true
	})
	if err != nil {
		return m.all().Find(key)
	}
	if found == nil {
		return nil, false
	}
	if len(found) == 0 { // not JSON (events are checked at ingest; fuzzed input is not)
		return m.all().Find(key)
	}
	switch found[0] {
	case '"':
		return types.String(jsonString(found)), true
	case 't', 'f':
		return types.Bool(found[0] == 't'), true
	case 'n':
		return types.NullValue, true
	case '{', '[':
		var x any
		if json.Unmarshal(found, &x) != nil {
			return m.all().Find(key)
		}
		return types.DefaultTypeAdapter.NativeToValue(x), true
	}
	f, err := strconv.ParseFloat(string(found), 64)
	if err != nil {
		return m.all().Find(key)
	}
	return types.Double(f), true
}

// Get implements traits.Indexer.
func (m *detailsMap) Get(key ref.Val) ref.Val {
	if v, ok := m.Find(key); ok {
		return v
	}
	return m.all().Get(key)
}

// Contains implements traits.Container: whether the map has the key.
func (m *detailsMap) Contains(key ref.Val) ref.Val {
	if _, ok := m.Find(key); ok {
		return types.True
	}
	return m.all().Contains(key)
}

// ConvertToNative implements ref.Val.
func (m *detailsMap) ConvertToNative(t reflect.Type) (any, error) { return m.all().ConvertToNative(t) }

// ConvertToType implements ref.Val.
func (m *detailsMap) ConvertToType(t ref.Type) ref.Val { return m.all().ConvertToType(t) }

// Equal implements ref.Val.
func (m *detailsMap) Equal(other ref.Val) ref.Val { return m.all().Equal(other) }

// Type implements ref.Val.
func (m *detailsMap) Type() ref.Type { return types.MapType }

// Value implements ref.Val.
func (m *detailsMap) Value() any { return m.all().Value() }

// Iterator implements traits.Iterable.
func (m *detailsMap) Iterator() traits.Iterator { return m.all().Iterator() }

// Size implements traits.Sizer.
func (m *detailsMap) Size() ref.Val { return m.all().Size() }

var _ interpreter.Activation = (*Vars)(nil)
