package destination

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/google/cel-go/cel"
	celchecker "github.com/google/cel-go/checker"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
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

// Vars is one event as an expression sees it. It decodes the event's JSON on first use and
// keeps the result, so several destinations' expressions share one decoding. It is not safe for
// concurrent use. A nil *Vars is an event with every field empty.
type Vars struct {
	data    []byte
	decoded bool
	ev      event.Event
	details ref.Val
}

// NewVars returns the variables of the event whose JSON (as event.Event.AppendJSON writes it,
// with or without id) is data. It does not copy data; the caller must not change it while the
// Vars is in use. Invalid JSON gives empty variables.
func NewVars(data []byte) *Vars { return &Vars{data: data} }

// VarsOf returns the variables of a decoded event.
func VarsOf(ev *event.Event) *Vars { return &Vars{decoded: true, ev: *ev} }

func (v *Vars) decode() {
	if v.decoded {
		return
	}
	v.decoded = true
	// Not json.Unmarshal, which would check the whole event once more before the event's own
	// decoder checks it (a third of the expression's cost when destinations catch up).
	if err := v.ev.UnmarshalJSON(v.data); err != nil {
		v.ev = event.Event{}
	}
}

// ResolveName returns the value of one of the expression's variables. It implements
// interpreter.Activation.
func (v *Vars) ResolveName(name string) (any, bool) {
	if v == nil {
		v = &Vars{decoded: true}
	}
	v.decode()
	e := &v.ev
	switch name {
	case varEventType:
		return e.EventType, true
	case varEntityType:
		return e.EntityType, true
	case varEntityPath:
		return e.EntityPath, true
	case varEntityID:
		return e.EntityID, true
	case varAuthorID:
		return e.AuthorID, true
	case varAuthorName:
		return e.AuthorName, true
	case varTargetType:
		return e.TargetType, true
	case varTargetID:
		return targetID(e.TargetID), true
	case varIPAddress:
		return e.IPAddress, true
	case varCreatedAt:
		return e.CreatedAt, true
	case varDetails:
		if v.details == nil {
			v.details = detailsVal(e.Details)
		}
		return v.details, true
	}
	return nil, false
}

// Parent implements interpreter.Activation: there is none.
func (v *Vars) Parent() interpreter.Activation { return nil }

// targetID renders the event's target_id (a JSON number, string or null) as a string: the
// number as written, the string's contents, or "" for null or none.
func targetID(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		return s
	}
	return string(raw)
}

// detailsVal converts the event's details (a JSON object) into a CEL map. Numbers become
// doubles, as JSON has no integers; CEL compares them with ints by value. Anything that is not
// an object gives an empty map.
func detailsVal(raw json.RawMessage) ref.Val {
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			m = nil
		}
	}
	if m == nil {
		m = map[string]any{}
	}
	return types.DefaultTypeAdapter.NativeToValue(m)
}

var _ interpreter.Activation = (*Vars)(nil)
