package destination

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// Type is one destination category, as the package that implements it defines it
// (httpdest.Type, s3dest.Type, ...): its typed config, its secret, its sender and how the UI
// asks for it. A Registry lists the types the service offers; internal/app wires the one list,
// as Alertmanager's notify and Vault's audit backends do.
type Type struct {
	// Category is the name the API and the store use: "http", "aws", "kafka".
	Category string
	// Title names the category for people: "Amazon S3".
	Title string
	// Fields are the keys the category's config defines (format, batch and delivery come with
	// every category), in the order the UI's form shows them.
	Fields []Field
	// MaxBatchBytes bounds config.batch.maxBytes (MaxBatchMaxBytes when 0), and MaxBatchEvents
	// config.batch.maxEvents (MaxBatchMaxEvents when 0): what one request of the category's
	// protocol may carry.
	MaxBatchBytes, MaxBatchEvents int64
	// Parse checks the category's fields of a config object, writes them normalized to o
	// (Object.SetString and the like) and returns the typed config that New takes. It reports
	// problems with o's checks; what it returns is used only when there were none.
	Parse func(o *Object) any
	// Secret is the rule for the destination's secretToken.
	Secret Secret
	// New makes a Sender from the typed config Parse returned and the opened settings.
	New func(cfg any, s Settings, env Env) (Sender, error)
	// Where summarizes where a config delivers, for lists ("s3://bucket (eu-west-1)"). It may be
	// nil.
	Where func(cfg any) string
	// KeepsCheckpoints: the category keeps the trail's checkpoints next to the events it
	// delivers (object stores write each one as an object, as CloudTrail writes its digest
	// files), so checkpoint events reach it whatever its filters say. Other categories receive
	// them only when their event-type filter names the type.
	KeepsCheckpoints bool
}

// Field is one config key of a category and how the UI's form asks for it.
type Field struct {
	Key, Label string
	Kind       string // text, url, number, checkbox
	Help       string
	Required   bool
}

// Secret is the rule for a category's secretToken, and how the UI asks for it.
type Secret struct {
	// Optional: "" is accepted (http: the caller generates a verification token).
	Optional bool
	// MaxLen bounds the secret in characters (MaxSecretTokenLen when 0).
	MaxLen int
	// Check returns why a non-empty secret of at most MaxLen valid UTF-8 characters is refused,
	// or "". The reason never quotes the secret.
	Check func(secret string) string
	// How the UI's form asks for it: Label, Kind (text, password, textarea) and Help.
	Label, Kind, Help string
}

// Registry is the destination types the service offers, in a fixed order. Build it once with
// NewRegistry; it is read-only after that and safe for concurrent use.
type Registry struct {
	types []*Type
}

// NewRegistry returns a registry of types, in that order. It panics on a type without a
// category, a Parse or a New, and on a category given twice: the list is wired at build time.
func NewRegistry(types ...*Type) *Registry {
	seen := map[string]bool{}
	for _, t := range types {
		if t == nil || t.Category == "" || t.Parse == nil || t.New == nil {
			panic("destination: a Type needs a Category, a Parse and a New")
		}
		if seen[t.Category] {
			panic("destination: category " + t.Category + " registered twice")
		}
		seen[t.Category] = true
	}
	return &Registry{types: slices.Clone(types)}
}

// Categories returns every category, in the registry's order. It returns a fresh slice.
func (r *Registry) Categories() []string {
	out := make([]string, len(r.types))
	for i, t := range r.types {
		out[i] = t.Category
	}
	return out
}

// Types returns every type, in the registry's order. It returns a fresh slice.
func (r *Registry) Types() []*Type { return slices.Clone(r.types) }

// Type returns the type of category.
func (r *Registry) Type(category string) (*Type, bool) {
	for _, t := range r.types {
		if t.Category == category {
			return t, true
		}
	}
	return nil, false
}

func (r *Registry) unknownCategory(category string) error {
	return &ConfigError{
		Field:   FieldCategory,
		Code:    CodeUnknownCategory,
		Message: fmt.Sprintf("%s is not a destination category (use one of %s)", quoteKey(category), strings.Join(r.Categories(), ", ")),
	}
}

// ParseConfig validates raw, a destination's config as a JSON document (GraphQL's config
// argument), for category, and returns it normalized (see Config).
//
// The document rules are the same for every category: raw is a JSON object of at most
// MaxConfigBytes bytes, valid UTF-8, with no key given twice at any level and no key its
// category does not define. Each field has the JSON type it expects; integers are written
// without fraction or exponent. A missing key and null mean the same, as does "" for an
// optional string. Every category takes batch (maxEvents 1 to 10000, maxBytes 1024 to the
// type's MaxBatchBytes, maxWaitMs 0 to 60000) and delivery (concurrency 1 to MaxConcurrency,
// ordered, bufferWhilePaused). The category's own fields are its package's rules (Type.Parse).
//
// ParseConfig reports every problem at once (up to 50, then one CodeTooMany error that counts
// the rest), joined with errors.Join. Each one is a *ConfigError (see ConfigErrors). An unknown
// category, and raw that is too long, not JSON or not an object, stop the checks there. Only
// the config's form is checked: whether a host may be dialled, and the uniqueness rules that
// span destinations, are for the caller.
func (r *Registry) ParseConfig(category string, raw []byte) (Config, error) {
	t, ok := r.Type(category)
	if !ok {
		return Config{}, r.unknownCategory(category)
	}
	p, err := t.parse(raw)
	return p.cfg, err
}

// parsed is a config as parse reads it.
type parsed struct {
	cfg    Config
	typed  any    // what the type's Parse returned
	format string // config.format; "" for GitLab's
}

// parse is ParseConfig for one type; it returns the typed config and the format too.
func (t *Type) parse(raw []byte) (parsed, error) {
	c := &checker{}
	root := c.document(raw)
	if root == nil {
		return parsed{}, c.err()
	}
	keys := make([]string, 0, len(t.Fields)+3)
	for _, f := range t.Fields {
		keys = append(keys, f.Key)
	}
	keys = append(keys, "format", "batch", "delivery")
	o, ok := c.open(FieldConfig, root, keys...)
	if !ok {
		return parsed{}, c.err()
	}
	obj := &Object{o: o}
	typed := t.Parse(obj)
	name := c.format(o, &obj.out, t.Category)
	c.batch(o, &obj.out, cmpOr(t.MaxBatchEvents, MaxBatchMaxEvents), cmpOr(t.MaxBatchBytes, MaxBatchMaxBytes))
	c.delivery(o, &obj.out)
	if err := c.err(); err != nil {
		return parsed{}, err
	}
	return parsed{cfg: Config{Category: t.Category, JSON: obj.out.bytes(), Headers: obj.headers}, typed: typed, format: name}, nil
}

func cmpOr(a, b int64) int64 {
	if a != 0 {
		return a
	}
	return b
}

// ValidateSecret checks a destination's secret (GraphQL's secretToken) for category: required
// unless the type's Secret is Optional, valid UTF-8, at most its MaxLen characters, then the
// type's own Check. Leading and trailing whitespace is never trimmed. The error is a
// *ConfigError with Field FieldSecretToken, or FieldCategory for an unknown category. It never
// holds any part of secret.
func (r *Registry) ValidateSecret(category, secret string) error {
	fail := func(code string, limit int, msg string) error {
		return &ConfigError{Field: FieldSecretToken, Code: code, Message: msg, Limit: limit}
	}
	t, ok := r.Type(category)
	if !ok {
		return r.unknownCategory(category)
	}
	rule := t.Secret
	switch {
	case secret == "" && rule.Optional:
		return nil
	case secret == "":
		return fail(CodeRequired, 0, "is required")
	case !utf8.ValidString(secret):
		return fail(CodeInvalid, 0, "must be valid UTF-8")
	}
	limit := rule.MaxLen
	if limit == 0 {
		limit = MaxSecretTokenLen
	}
	if utf8.RuneCountInString(secret) > limit {
		return fail(CodeTooLong, limit, fmt.Sprintf("must be at most %d characters long", limit))
	}
	if rule.Check != nil {
		if msg := rule.Check(secret); msg != "" {
			return fail(CodeInvalid, 0, msg)
		}
	}
	return nil
}

// Open makes the Sender of a stored destination: it reads s.Config with Decode and calls the
// type's New with the typed config and the settings Decode completed.
func (t *Type) Open(s Settings, env Env) (Sender, error) {
	cfg, s, err := t.Decode(s, env)
	if err != nil {
		return nil, err
	}
	return t.New(cfg, s, env)
}

// Decode reads the stored config of s with the type's Parse: the one decoding of a config (a
// sender takes the typed result, it does not read the JSON again). It returns the typed config
// and s with Format set to the config's output format, written with env.Encoder. A config of
// another category, or one that no longer parses, is a permanent failure that names the fields,
// never a value.
func (t *Type) Decode(s Settings, env Env) (any, Settings, error) {
	p, err := t.decode(s)
	if err != nil {
		return nil, s, err
	}
	s.Format = NewEncoding(p.format, env.Encoder)
	return p.typed, s, nil
}

func (t *Type) decode(s Settings) (parsed, error) {
	if s.Category != "" && s.Category != t.Category {
		return parsed{}, SettingsFailure("the %s sender cannot deliver to a %q destination", t.Category, s.Category)
	}
	p, err := t.parse(s.Config)
	if err != nil {
		return parsed{}, SettingsFailure("the stored config is not a valid %s config: %s", t.Category, firstProblems(err))
	}
	return p, nil
}

// firstProblems lists the first problems of a ParseConfig error on one line.
func firstProblems(err error) string {
	errs := ConfigErrors(err)
	var parts []string
	for i, e := range errs {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(errs)-i))
			break
		}
		parts = append(parts, e.Error())
	}
	return strings.Join(parts, "; ")
}

// Factories returns the Factory of every category, for the delivery engine.
func (r *Registry) Factories() map[string]Factory {
	out := make(map[string]Factory, len(r.types))
	for _, t := range r.types {
		out[t.Category] = t.Open
	}
	return out
}

// CheckpointKeepers returns the categories whose Type.KeepsCheckpoints, for the delivery
// engine.
func (r *Registry) CheckpointKeepers() map[string]bool {
	out := map[string]bool{}
	for _, t := range r.types {
		if t.KeepsCheckpoints {
			out[t.Category] = true
		}
	}
	return out
}

// Where summarizes where a stored config of category delivers, or "".
func (r *Registry) Where(category string, stored []byte) string {
	t, ok := r.Type(category)
	if !ok || t.Where == nil {
		return ""
	}
	p, err := t.parse(stored)
	if err != nil {
		return ""
	}
	return t.Where(p.typed)
}

// Object is the config object a Type's Parse reads: its checks report problems with stable
// codes at the right field, and its Set methods write the normalized config to store.
type Object struct {
	o       *object
	out     objectWriter
	headers []Header
}

// Field returns the path of key for a ConfigError: "config.url".
func (o *Object) Field(key string) string { return o.o.field(key) }

// String returns the string at key. ok is false when the key is missing, null, "" or not a
// string; a missing key is reported if required, and a value of another type always is.
func (o *Object) String(key string, required bool) (string, bool) { return o.o.str(key, required) }

// Bool returns the boolean at key; ok is false when it is missing, null or not a boolean (then
// reported).
func (o *Object) Bool(key string) (b, ok bool) { return o.o.boolean(key) }

// Int returns the integer at key, from lo to hi, or def when it is missing, null or wrong
// (reported).
func (o *Object) Int(key string, lo, hi, def int64) int64 { return o.o.integer(key, lo, hi, def) }

// Has reports whether key is given (not missing, not null).
func (o *Object) Has(key string) bool { return o.o.get(key) != nil }

// Problem reports a problem at field.
func (o *Object) Problem(field, code string, limit int, msg string) {
	o.o.c.add(field, code, limit, msg)
}

// Length reports whether s has min to max characters, and reports the problem if not.
func (o *Object) Length(field, s string, min, max int) bool { return o.o.c.length(field, s, min, max) }

// Match reports whether s matches re, and reports msg as CodeInvalid if not.
func (o *Object) Match(field, s string, re *regexp.Regexp, msg string) bool {
	return o.o.c.match(field, s, re, msg)
}

// Printable reports whether s has 1 to max printable characters, and reports the problem if
// not.
func (o *Object) Printable(field, s string, max int) bool { return o.o.c.printable(field, s, max) }

// URL checks a destination URL (see the http rules): at most MaxURLLen characters, no spaces
// or control characters, http:// or https://, a host; with allowVariable, GitLab's $VARIABLE
// form too.
func (o *Object) URL(field, s string, allowVariable bool) bool {
	return o.o.c.url(field, s, allowVariable)
}

// Headers checks custom HTTP headers at key (http's rules) and keeps them, apart from the JSON
// to store: Config.Headers. It returns them sorted.
func (o *Object) Headers(key string) []Header {
	o.headers = o.o.c.headers(o.Field(key), o.o.get(key))
	return o.headers
}

// SetString, SetBool and SetInt write a normalized field to the config to store.
func (o *Object) SetString(key, s string)    { o.out.setString(key, s) }
func (o *Object) SetBool(key string, b bool) { o.out.setBool(key, b) }
func (o *Object) SetInt(key string, n int64) { o.out.setInt(key, n) }
