package streamconfig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/store"
)

// Destination is a streaming destination with its secrets opened, as its owners see it.
type Destination struct {
	ID       int64
	Owner    Owner
	Name     string
	Category string
	// Config is the config as the API shows it: for http with the custom headers (values
	// included) under "headers".
	Config []byte

	SecretToken           string // the http verification token, or the cloud credential
	SigningSecret         string // http only: the Standard Webhooks secret (whsec_...)
	PreviousSigningSecret string
	PreviousValidUntil    time.Time

	Active  bool
	Headers []Header

	EventTypes     []string
	DenyEventTypes []string
	Categories     []string
	DenyCategories []string
	Namespaces     []NamespaceFilter
	// FilterExpression is the CEL expression filter (destination.FilterSpec.Expression); ""
	// means none.
	FilterExpression string

	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Header is a custom HTTP header of an http destination.
type Header struct {
	ID     int64
	Name   string
	Value  string
	Active bool
}

// NamespaceFilter limits a destination to a group (with its descendants) or a project.
type NamespaceFilter struct {
	ID        int64
	Namespace store.Namespace // Kind tells group from project
}

// Flavor is the API a change came through. It decides the type of the audit event the change
// publishes: GitLab has one set of types per API.
type Flavor int

// The flavors.
const (
	Unified Flavor = iota
	LegacyHTTP
	LegacyGCP
	LegacyAWS
)

// Ref names one destination: its scope (a group id never names an instance destination), its
// id, and for the legacy API the category the id's class implies ("" for any).
type Ref struct {
	Scope    store.DestinationScope
	ID       int64
	Category string
	Flavor   Flavor
}

// Associated data binding each sealed value to the column it is stored in.
var (
	aadSecretToken    = []byte("destination.secret_token")
	aadSigningSecret  = []byte("destination.signing_secret")
	aadPreviousSecret = []byte("destination.previous_signing_secret")
	aadHeaderValue    = []byte("destination.header_value")
)

func (s *Service) seal(v string, aad []byte) (string, error) {
	if v == "" {
		return "", nil
	}
	return s.Sealer.Seal([]byte(v), aad)
}

func (s *Service) open(v string, aad []byte) (string, error) {
	if v == "" {
		return "", nil
	}
	b, err := s.Sealer.Open(v, aad)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrSecretKey, err)
	}
	return string(b), nil
}

// ErrSecretKey: a stored secret cannot be opened with the configured key. The operator gave
// another AUDITSTREAM_SECRET_KEY or secret.key than the one that sealed it (or dropped an old
// key from the rotation list too early).
var ErrSecretKey = errors.New("a destination secret cannot be opened with the configured secret key (AUDITSTREAM_SECRET_KEY or secret.key in the data directory); restore the key that sealed it")

// view opens a stored destination.
func (s *Service) view(ctx context.Context, d store.Destination) (Destination, error) {
	out := Destination{
		ID: d.ID, Owner: Owner{Scope: d.Scope}, Name: d.Name, Category: d.Category, Active: d.Active,
		PreviousValidUntil: d.PreviousValidUntil, Version: d.Version, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
		EventTypes: d.EventTypes, DenyEventTypes: d.DenyEventTypes, Categories: d.Categories, DenyCategories: d.DenyCategories,
		FilterExpression: d.FilterExpression,
	}
	if d.Scope == store.ScopeGroup {
		g, err := s.Namespaces.ByKey(ctx, d.NamespaceKey)
		if err != nil {
			return Destination{}, storeErr(err)
		}
		out.Owner.Group = g
	}
	st, err := s.Settings(d)
	if err != nil {
		return Destination{}, err
	}
	out.SecretToken, out.SigningSecret, out.PreviousSigningSecret = st.SecretToken, st.SigningSecret, st.PreviousSigningSecret
	if !out.PreviousValidUntil.IsZero() && !s.now().Before(out.PreviousValidUntil) {
		out.PreviousSigningSecret, out.PreviousValidUntil = "", time.Time{} // the grace period is over
	}
	for i, h := range st.Headers {
		out.Headers = append(out.Headers, Header{ID: d.Headers[i].ID, Name: h.Name, Value: h.Value, Active: h.Active})
	}
	out.Config = destination.ConfigWithHeaders(d.Category, d.Config, st.Headers)
	for _, n := range d.Namespaces {
		ns, err := s.Namespaces.ByKey(ctx, n.Key)
		if err != nil {
			return Destination{}, storeErr(err)
		}
		out.Namespaces = append(out.Namespaces, NamespaceFilter{ID: n.ID, Namespace: ns})
	}
	return out, nil
}

// List returns the destinations of owner, oldest first, when the actor may manage them.
func (s *Service) List(ctx context.Context, a Actor, o Owner) ([]Destination, error) {
	_, vs, err := s.list(ctx, a, o)
	return vs, err
}

// list returns the owner's destinations as stored and as shown.
func (s *Service) list(ctx context.Context, a Actor, o Owner) ([]store.Destination, []Destination, error) {
	if err := s.authorize(ctx, a, o, false); err != nil {
		return nil, nil, err
	}
	ds, err := s.Store.DestinationList(ctx, store.DestinationListParams{Scope: o.Scope, NamespaceKey: o.key()})
	if err != nil {
		return nil, nil, storeErr(err)
	}
	a.Seen.add(ds...)
	out := make([]Destination, 0, len(ds))
	for _, d := range ds {
		v, err := s.view(ctx, d)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, v)
	}
	return ds, out, nil
}

// withHeadersOf returns config with the "headers" of the shown config cur (none if it has none).
func withHeadersOf(config, cur []byte) ([]byte, error) {
	var c, old map[string]json.RawMessage
	if err := json.Unmarshal(config, &c); err != nil {
		return nil, inputErr("config must be a JSON object")
	}
	_ = json.Unmarshal(cur, &old) // the shown config: always an object
	delete(c, "headers")
	if h, ok := old["headers"]; ok {
		c["headers"] = h
	}
	return json.Marshal(c)
}

// Get returns the destination ref names, when the actor may see it.
func (s *Service) Get(ctx context.Context, a Actor, ref Ref) (Destination, error) {
	_, d, err := s.load(ctx, a, ref, false)
	return d, err
}

// load returns the destination ref names after checking that the actor may manage it.
func (s *Service) load(ctx context.Context, a Actor, ref Ref, write bool) (store.Destination, Destination, error) {
	d, err := s.Store.DestinationGet(ctx, ref.ID)
	if err != nil {
		return store.Destination{}, Destination{}, storeErr(err)
	}
	return s.check(ctx, a, ref, d, write)
}

// check authorizes the actor on a destination found by id, header or filter, and opens it.
func (s *Service) check(ctx context.Context, a Actor, ref Ref, d store.Destination, write bool) (store.Destination, Destination, error) {
	if _, err := s.authorizeOn(ctx, a, ref, d, write); err != nil {
		return store.Destination{}, Destination{}, err
	}
	v, err := s.view(ctx, d)
	if err != nil {
		return store.Destination{}, Destination{}, err
	}
	return d, v, nil
}

// authorizeOn checks that ref's scope and category match d and that the actor may manage d.
func (s *Service) authorizeOn(ctx context.Context, a Actor, ref Ref, d store.Destination, write bool) (Owner, error) {
	if write { // it is about to change: what the request remembers of it is no longer true
		a.Seen.forget(d.ID)
	}
	if d.Scope != ref.Scope || ref.Category != "" && d.Category != ref.Category {
		return Owner{}, ErrNotFound
	}
	o := Owner{Scope: d.Scope}
	if d.Scope == store.ScopeGroup {
		g, err := s.Namespaces.ByKey(ctx, d.NamespaceKey)
		if err != nil {
			return Owner{}, storeErr(err)
		}
		o.Group = g
	}
	return o, s.authorize(ctx, a, o, write)
}

// CheckChange reports whether the actor may change the destination (ErrNotFound if not), for
// a transport that refuses a malformed request only to those who may make it.
func (s *Service) CheckChange(ctx context.Context, a Actor, ref Ref) error {
	_, err := s.Authorized(ctx, a, ref, true)
	return err
}

// CreateParams creates a destination.
type CreateParams struct {
	Owner       Owner
	Category    string
	Config      []byte // the config JSON as given
	Name        *string
	SecretToken *string
	Active      *bool
	Flavor      Flavor
	// LegacyToken applies the legacy API's rule to SecretToken: 16 to 24 characters.
	LegacyToken bool
}

// Create validates and stores a new destination, and records it.
func (s *Service) Create(ctx context.Context, a Actor, p CreateParams) (Destination, error) {
	if err := s.authorize(ctx, a, p.Owner, true); err != nil {
		return Destination{}, err
	}
	if p.Owner.Scope == store.ScopeGroup && p.Owner.Group.ParentKey != 0 {
		return Destination{}, inputErr("Group must not be a subgroup. Use a top-level group.")
	}
	cfg, err := s.Types.ParseConfig(p.Category, p.Config)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	name := destination.DefaultName()
	if p.Name != nil {
		name = *p.Name
	}
	if err := destination.ValidateName(name); err != nil {
		errs = append(errs, err)
	}
	token := ""
	if p.SecretToken != nil {
		token = *p.SecretToken
	}
	if p.LegacyToken && token != "" {
		if err := destination.ValidateVerificationToken(token); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.Types.ValidateSecret(p.Category, token); err != nil {
		errs = append(errs, err)
	}
	// The owner's other destinations: the limit and the uniqueness rules, reported with the
	// problems above, all at once.
	existing, err := s.Store.DestinationList(ctx, store.DestinationListParams{Scope: p.Owner.Scope, NamespaceKey: p.Owner.key()})
	if err != nil {
		return Destination{}, storeErr(err)
	}
	if len(existing) >= s.maxDestinations() {
		errs = append(errs, fmt.Errorf("Maximum number of streaming destinations (%d) exceeded", s.maxDestinations()))
	}
	if cfg.Category == "" { // the config was refused: the name is checked within the category given
		cfg.Category = p.Category
	}
	errs = append(errs, uniqueness(existing, 0, name, cfg, p.Flavor)...)
	if len(errs) > 0 {
		return Destination{}, inputErrs(errors.Join(errs...))
	}
	if token == "" && p.Category == destination.CategoryHTTP {
		token = destination.NewVerificationToken()
	}

	cp := store.DestinationCreateParams{
		Scope: p.Owner.Scope, NamespaceKey: p.Owner.key(), Name: name, Category: p.Category, Config: cfg.JSON,
		Active: p.Active == nil || *p.Active, CreatedAt: s.now(),
	}
	if cp.SecretToken, err = s.seal(token, aadSecretToken); err != nil {
		return Destination{}, err
	}
	if p.Category == destination.CategoryHTTP {
		if cp.SigningSecret, err = s.seal(destination.NewSigningSecret(), aadSigningSecret); err != nil {
			return Destination{}, err
		}
	}
	if cp.Headers, err = s.sealHeaders(cfg.Headers, nil); err != nil {
		return Destination{}, err
	}
	d, err := s.Store.DestinationCreate(ctx, cp)
	v, err := s.written(ctx, d, err)
	if err != nil {
		return Destination{}, err
	}
	s.record(ctx, a, v, auditCreate, p.Flavor, fmt.Sprintf("Created %s streaming destination %q", v.Category, v.Name))
	return v, nil
}

// uniqueness applies GitLab's per-owner uniqueness rules: a name is used once per category
// (the store enforces it too; GitLab's legacy API has a table per category and its unified
// model scopes the name to the category), a Google Cloud Logging project and log pair is used
// once; the legacy API also keeps HTTP URLs and S3 buckets unique.
// It returns every rule broken. cfg.JSON may be nil (the config was refused or is unchanged):
// then only the name is checked.
func uniqueness(existing []store.Destination, self int64, name string, cfg destination.Config, f Flavor) []error {
	var errs []error
	add := func(format string, args ...any) {
		if err := fmt.Errorf(format, args...); !slices.ContainsFunc(errs, func(e error) bool { return e.Error() == err.Error() }) {
			errs = append(errs, err)
		}
	}
	for _, e := range existing {
		if e.ID == self || e.Category != cfg.Category {
			continue
		}
		if e.Name == name {
			add("Name has already been taken")
		}
		if cfg.JSON == nil {
			continue
		}
		switch {
		case cfg.Category == destination.CategoryGCP && sameFields(e.Config, cfg.JSON, "googleProjectIdName", "logIdName"):
			add("Config: the googleProjectIdName and logIdName combination is already used by destination %q", e.Name)
		case f == LegacyHTTP && sameFields(e.Config, cfg.JSON, "url"):
			add("Destination url has already been taken")
		case f == LegacyAWS && sameFields(e.Config, cfg.JSON, "bucketName"):
			add("Bucket name has already been taken")
		}
	}
	return errs
}

func (s *Service) sealHeaders(hs []destination.Header, old []Header) ([]store.DestinationHeader, error) {
	out := make([]store.DestinationHeader, 0, len(hs))
	for _, h := range hs {
		v, err := s.seal(h.Value, aadHeaderValue)
		if err != nil {
			return nil, err
		}
		var id int64
		for _, o := range old { // keep a header's id when its name stays
			if strings.EqualFold(o.Name, h.Name) {
				id = o.ID
			}
		}
		out = append(out, store.DestinationHeader{ID: id, Name: h.Name, Value: v, Active: h.Active})
	}
	return out, nil
}

// UpdateParams changes a destination; nil fields stay as they are.
type UpdateParams struct {
	Ref         Ref
	Category    *string
	Config      []byte // nil: unchanged
	Name        *string
	SecretToken *string
	Active      *bool
	// ConfigPatch, for the legacy API, sets single config fields (nil values are skipped)
	// on top of the current config.
	ConfigPatch map[string]*string
	// KeepHeaders keeps the current custom headers whatever Config says: for a form that
	// edits the other settings, so that a header changed meanwhile is not put back.
	KeepHeaders bool
}

// Update validates and applies p, and records it.
func (s *Service) Update(ctx context.Context, a Actor, p UpdateParams) (Destination, error) {
	return s.mutate(ctx, a, p.Ref, func(cur Destination) (change, error) {
		var ch change
		category := cur.Category
		if p.Category != nil && *p.Category != cur.Category {
			if p.Config == nil {
				return ch, inputErr("Config is required when the category changes")
			}
			category = *p.Category
			ch.up.Category = &category
			ch.notes = append(ch.notes, fmt.Sprintf("category from %s to %s", cur.Category, category))
		}
		rawConfig := p.Config
		if p.ConfigPatch != nil {
			patched, err := patchConfig(cur.Config, p.ConfigPatch)
			if err != nil {
				return ch, err
			}
			rawConfig = patched
		}
		if p.KeepHeaders && rawConfig != nil {
			kept, err := withHeadersOf(rawConfig, cur.Config)
			if err != nil {
				return ch, err
			}
			rawConfig = kept
		}
		var errs []error
		if rawConfig != nil {
			cfg, err := s.Types.ParseConfig(category, rawConfig)
			if err != nil {
				errs = append(errs, err)
			} else {
				ch.cfg = &cfg
				ch.up.Config = &cfg.JSON
				hs, err := s.sealHeaders(cfg.Headers, cur.Headers)
				if err != nil {
					return ch, err
				}
				ch.up.Headers = &hs
				ch.notes = append(ch.notes, s.configNotes(cur, cfg)...)
			}
		}
		if p.Name != nil && *p.Name != cur.Name {
			if err := destination.ValidateName(*p.Name); err != nil {
				errs = append(errs, err)
			}
			ch.up.Name = p.Name
			ch.notes = append(ch.notes, fmt.Sprintf("name from %q to %q", cur.Name, *p.Name))
		}
		token := cur.SecretToken
		if p.SecretToken != nil && *p.SecretToken != cur.SecretToken {
			token = *p.SecretToken
			if token == "" && category == destination.CategoryHTTP {
				token = destination.NewVerificationToken()
			}
			ch.notes = append(ch.notes, "secret token changed")
		}
		if category != cur.Category && p.SecretToken == nil {
			// Another category's secret is no credential for this one, and an AWS key must
			// never become an http token that owners can read.
			token = ""
		}
		if err := s.Types.ValidateSecret(category, token); err != nil {
			errs = append(errs, err)
		}
		if ch.up.Name != nil || ch.cfg != nil || category != cur.Category || rawConfig != nil {
			// The owner's other destinations: reported with the problems above, all at once.
			name := cur.Name
			if ch.up.Name != nil {
				name = *ch.up.Name
			}
			cfg := destination.Config{Category: category}
			if ch.cfg != nil {
				cfg = *ch.cfg
			}
			existing, err := s.Store.DestinationList(ctx, store.DestinationListParams{Scope: cur.Owner.Scope, NamespaceKey: cur.Owner.key()})
			if err != nil {
				return ch, storeErr(err)
			}
			errs = append(errs, uniqueness(existing, cur.ID, name, cfg, p.Ref.Flavor)...)
		}
		if len(errs) > 0 {
			return ch, inputErrs(errors.Join(errs...))
		}
		if category == destination.CategoryHTTP && token == "" {
			token = destination.NewVerificationToken()
		}
		if token != cur.SecretToken {
			sealed, err := s.seal(token, aadSecretToken)
			if err != nil {
				return ch, err
			}
			ch.up.SecretToken = &sealed
		}
		if category != cur.Category {
			signing, none := "", time.Time{}
			if category == destination.CategoryHTTP {
				var err error
				if signing, err = s.seal(destination.NewSigningSecret(), aadSigningSecret); err != nil {
					return ch, err
				}
			}
			ch.up.SigningSecret, ch.up.PreviousSigningSecret, ch.up.PreviousValidUntil = &signing, new(string), &none
			if category != destination.CategoryHTTP {
				empty := []store.DestinationHeader{}
				ch.up.Headers = &empty
			}
		}
		if p.Active != nil && *p.Active != cur.Active {
			ch.up.Active = p.Active
			ch.notes = append(ch.notes, fmt.Sprintf("active from %t to %t", cur.Active, *p.Active))
		}
		ch.kind = auditUpdate
		ch.message = "Updated streaming destination " + fmt.Sprintf("%q", cur.Name)
		return ch, nil
	})
}

// Delete removes a destination and records it.
func (s *Service) Delete(ctx context.Context, a Actor, ref Ref) error {
	d, err := s.Store.DestinationGet(ctx, ref.ID)
	if err != nil {
		return storeErr(err)
	}
	// Deleting opens no secret: a destination sealed with a lost key can still be removed.
	o, err := s.authorizeOn(ctx, a, ref, d, true)
	if err != nil {
		return err
	}
	if err := s.Store.DestinationDelete(ctx, d.ID); err != nil {
		return storeErr(err)
	}
	s.record(ctx, a, Destination{ID: d.ID, Owner: o, Name: d.Name, Category: d.Category}, auditDelete, ref.Flavor,
		fmt.Sprintf("Deleted %s streaming destination %q", d.Category, d.Name))
	return nil
}

// RotateSigningSecret gives an http destination a new signing secret; the previous one stays
// valid for grace.
func (s *Service) RotateSigningSecret(ctx context.Context, a Actor, ref Ref, grace time.Duration) (Destination, error) {
	return s.mutate(ctx, a, ref, func(cur Destination) (change, error) {
		var ch change
		if grace < 0 || grace > MaxSigningGrace {
			return ch, inputErr("gracePeriodSeconds must be between 0 and %d", int(MaxSigningGrace/time.Second))
		}
		if cur.Category != destination.CategoryHTTP {
			return ch, inputErr("Only http destinations have a signing secret")
		}
		next, err := s.seal(destination.NewSigningSecret(), aadSigningSecret)
		if err != nil {
			return ch, err
		}
		prev, until := "", time.Time{}
		if grace > 0 {
			if prev, err = s.seal(cur.SigningSecret, aadPreviousSecret); err != nil {
				return ch, err
			}
			until = s.now().Add(grace).UTC().Truncate(time.Millisecond)
		}
		ch.up.SigningSecret, ch.up.PreviousSigningSecret, ch.up.PreviousValidUntil = &next, &prev, &until
		ch.kind, ch.message = auditUpdate, fmt.Sprintf("Rotated the signing secret of streaming destination %q", cur.Name)
		return ch, nil
	})
}

// MaxSigningGrace bounds the grace period of a signing secret rotation.
const MaxSigningGrace = 7 * 24 * time.Hour

// change is what one mutation does to a destination.
type change struct {
	up      store.DestinationUpdateParams
	cfg     *destination.Config
	kind    auditKind
	message string   // the audit event's custom_message
	notes   []string // what changed, for the message
}

// written opens a destination the store has just created or updated, or explains why the
// store refused: a unique constraint here is always the name.
func (s *Service) written(ctx context.Context, d store.Destination, err error) (Destination, error) {
	if errors.Is(err, store.ErrConflict) {
		return Destination{}, inputErr("Name has already been taken")
	}
	if err != nil {
		return Destination{}, storeErr(err)
	}
	return s.view(ctx, d)
}

// maxAttempts bounds how often mutate starts over when the destination changed meanwhile.
const maxAttempts = 20

// ErrContention: the destination kept changing while a change was being made to it; nothing
// was changed, and a retry will most likely succeed.
var ErrContention = errors.New("The destination was changed by someone else at the same time; nothing was changed, retry")

func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// mutate loads the destination, lets fn compute a change, and stores it unless the
// destination changed meanwhile, in which case it starts over (a few times).
func (s *Service) mutate(ctx context.Context, a Actor, ref Ref, fn func(cur Destination) (change, error)) (Destination, error) {
	for attempt := 0; ; attempt++ {
		_, cur, err := s.load(ctx, a, ref, attempt == 0)
		if err != nil {
			return Destination{}, err
		}
		ch, err := fn(cur)
		if err != nil {
			return Destination{}, err
		}
		ch.up.ID, ch.up.IfVersion, ch.up.UpdatedAt = cur.ID, cur.Version, s.now()
		d, err := s.Store.DestinationUpdate(ctx, ch.up)
		if errors.Is(err, store.ErrVersionConflict) {
			if attempt+1 == maxAttempts {
				return Destination{}, ErrContention
			}
			// Someone else changed it since we read it: read again, after a short random
			// pause so that writers racing for one destination spread out.
			if err := pause(ctx, time.Duration(1+rand.IntN(2*(attempt+1)))*time.Millisecond); err != nil {
				return Destination{}, err
			}
			continue
		}
		v, err := s.written(ctx, d, err)
		if err != nil {
			return Destination{}, err
		}
		msg := ch.message
		if len(ch.notes) > 0 {
			msg += ": " + strings.Join(ch.notes, ", ")
		}
		if ch.kind != auditNone {
			s.record(ctx, a, v, ch.kind, ref.Flavor, msg)
		}
		return v, nil
	}
}

// configNotes describes the non-secret config changes, for the audit event.
func (s *Service) configNotes(cur Destination, next destination.Config) []string {
	prev, _ := s.Types.ParseConfig(cur.Category, cur.Config)
	var notes []string
	if string(prev.JSON) != string(next.JSON) {
		notes = append(notes, "config from "+redactURLs(prev.JSON)+" to "+redactURLs(next.JSON))
	}
	var names []string
	for _, h := range next.Headers {
		names = append(names, h.Name)
	}
	var prevNames []string
	for _, h := range prev.Headers {
		prevNames = append(prevNames, h.Name)
	}
	if !slices.Equal(names, prevNames) || !sameHeaderValues(prev.Headers, next.Headers) {
		notes = append(notes, "headers changed")
	}
	return notes
}

func sameHeaderValues(a, b []destination.Header) bool {
	return slices.EqualFunc(a, b, func(x, y destination.Header) bool { return x == y })
}

// CheckKey opens one stored secret, to tell at start-up whether the configured key is the one
// that sealed the destinations' secrets. nil when there is nothing to open.
func (s *Service) CheckKey(ctx context.Context) error {
	ds, err := s.Store.DestinationList(ctx, store.DestinationListParams{})
	if err != nil {
		return storeErr(err)
	}
	for _, d := range ds {
		if d.SecretToken != "" {
			_, err := s.open(d.SecretToken, aadSecretToken)
			return err
		}
	}
	return nil
}

// redactURLs drops the user information and the query of URLs in a config object, for the
// audit event: webhook URLs often carry a token there.
func redactURLs(cfg []byte) string {
	var obj map[string]any
	if json.Unmarshal(cfg, &obj) != nil {
		return string(cfg)
	}
	for _, k := range []string{"url", "endpoint"} {
		v, ok := obj[k].(string)
		if !ok {
			continue
		}
		if u, err := url.Parse(v); err == nil {
			if u.User != nil {
				u.User = url.User("redacted")
			}
			if u.RawQuery != "" {
				u.RawQuery = "redacted"
			}
			obj[k] = u.String()
		}
	}
	b, _ := json.Marshal(obj)
	return string(b)
}

// Settings opens a stored destination for delivery: its stored config, headers and secrets in
// clear. Only the delivery engine calls it.
func (s *Service) Settings(d store.Destination) (destination.Settings, error) {
	out := destination.Settings{ID: d.ID, Category: d.Category, Config: d.Config, PreviousValidUntil: d.PreviousValidUntil}
	var err error
	if out.SecretToken, err = s.open(d.SecretToken, aadSecretToken); err != nil {
		return destination.Settings{}, err
	}
	if out.SigningSecret, err = s.open(d.SigningSecret, aadSigningSecret); err != nil {
		return destination.Settings{}, err
	}
	if out.PreviousSigningSecret, err = s.open(d.PreviousSigningSecret, aadPreviousSecret); err != nil {
		return destination.Settings{}, err
	}
	for _, h := range d.Headers {
		v, err := s.open(h.Value, aadHeaderValue)
		if err != nil {
			return destination.Settings{}, err
		}
		out.Headers = append(out.Headers, destination.Header{Name: h.Name, Value: v, Active: h.Active})
	}
	return out, nil
}
