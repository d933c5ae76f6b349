package event

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Type is one event type definition, GitLab's YAML schema.
type Type struct {
	Name              string   `yaml:"name" json:"name"`
	Description       string   `yaml:"description" json:"description"`
	IntroducedByIssue string   `yaml:"introduced_by_issue,omitempty" json:"introduced_by_issue,omitempty"`
	IntroducedByMR    string   `yaml:"introduced_by_mr,omitempty" json:"introduced_by_mr,omitempty"`
	FeatureCategory   string   `yaml:"feature_category" json:"feature_category"`
	Milestone         string   `yaml:"milestone,omitempty" json:"milestone,omitempty"`
	SavedToDatabase   bool     `yaml:"saved_to_database" json:"saved_to_database"`
	Streamed          bool     `yaml:"streamed" json:"streamed"`
	Scope             []string `yaml:"scope" json:"scope"`
	// OCSF is the type's OCSF class and activity (ours, not GitLab's schema). Every embedded
	// type has one; a type added with --event-types-dir may leave it out, and is then written
	// in OCSF with the fallback mapping of the formats that need one.
	OCSF OCSFMapping `yaml:"ocsf,omitempty" json:"ocsf,omitzero"`
	// Source is the file the definition came from ("embedded:<file>" or a path).
	Source string `yaml:"-" json:"-"`
}

// Catalog is an immutable set of event types. The zero value is empty. Safe for concurrent use.
type Catalog struct {
	types map[string]*Type
	names []string // sorted
}

//go:embed types/*.yml
var defaultTypes embed.FS

var (
	nameRE      = regexp.MustCompile(`^[a-z][a-z0-9_]{0,99}$`)
	categoryRE  = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,99}$`) // GitLab has self-hosted_models
	milestoneRE = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)
	validScopes = []string{"Instance", "Group", "Project", "User"}
)

// Load returns the embedded default catalog with the definitions in dir (when not empty) added;
// a file in dir whose name matches an embedded type overrides it (keeping the embedded OCSF
// mapping when the file has none). Every invalid definition is reported, each naming its file
// and the reason. An embedded type without an OCSF mapping is an error.
func Load(dir string) (*Catalog, error) {
	c := &Catalog{types: make(map[string]*Type)}
	var errs []error
	if err := c.addFS(defaultTypes, "types", "embedded:", false, &errs); err != nil {
		return nil, err
	}
	if dir != "" {
		if err := c.addFS(os.DirFS(dir), ".", dir+string(os.PathSeparator), true, &errs); err != nil {
			return nil, fmt.Errorf("event types dir %s: %w", dir, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.names = make([]string, 0, len(c.types))
	for n := range c.types {
		c.names = append(c.names, n)
	}
	sort.Strings(c.names)
	return c, nil
}

func (c *Catalog) addFS(fsys fs.FS, dir, prefix string, override bool, errs *[]error) error {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		ext := path.Ext(e.Name())
		if e.IsDir() || (ext != ".yml" && ext != ".yaml") {
			continue
		}
		src := prefix + e.Name()
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %w", src, err))
			continue
		}
		t, err := ParseType(b)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %w", src, err))
			continue
		}
		if !override && t.OCSF.IsZero() {
			// Embedded types must say how they map, so that adding a type adds its mapping.
			*errs = append(*errs, fmt.Errorf("%s: ocsf is required for an embedded type", src))
			continue
		}
		t.Source = src
		if prev, ok := c.types[t.Name]; ok && !(override && strings.HasPrefix(prev.Source, "embedded:")) {
			*errs = append(*errs, fmt.Errorf("%s: event type %q is already defined in %s", src, t.Name, prev.Source))
			continue
		} else if ok && t.OCSF.IsZero() {
			// An override copied from GitLab has no ocsf key: keep the embedded mapping rather
			// than fall back to the generic one.
			t.OCSF = prev.OCSF
		}
		c.types[t.Name] = t
	}
	return nil
}

// ParseType decodes and validates one YAML definition. Unknown keys are errors.
func ParseType(b []byte) (*Type, error) {
	var t Type
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// Validate reports every problem of a definition.
func (t *Type) Validate() error {
	var errs []error
	if !nameRE.MatchString(t.Name) {
		errs = append(errs, fmt.Errorf("name %q must match %s", t.Name, nameRE))
	}
	if strings.TrimSpace(t.Description) == "" {
		errs = append(errs, errors.New("description is required"))
	}
	if !categoryRE.MatchString(t.FeatureCategory) {
		errs = append(errs, fmt.Errorf("feature_category %q must match %s", t.FeatureCategory, categoryRE))
	}
	if !t.SavedToDatabase && !t.Streamed {
		errs = append(errs, errors.New("saved_to_database and streamed cannot both be false"))
	}
	if t.Milestone != "" && !milestoneRE.MatchString(t.Milestone) {
		errs = append(errs, fmt.Errorf("milestone %q must look like 17.1", t.Milestone))
	}
	for _, u := range []string{t.IntroducedByIssue, t.IntroducedByMR} {
		if u != "" && !strings.HasPrefix(u, "https://") {
			errs = append(errs, fmt.Errorf("%q must be an https URL", u))
		}
	}
	if len(t.Scope) == 0 {
		errs = append(errs, errors.New("scope must list at least one of Instance, Group, Project, User"))
	}
	for _, s := range t.Scope {
		if !slices.Contains(validScopes, s) {
			errs = append(errs, fmt.Errorf("scope %q must be one of Instance, Group, Project, User", s))
		}
	}
	if !t.OCSF.IsZero() {
		if err := t.OCSF.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Lookup returns the type named name, or nil.
func (c *Catalog) Lookup(name string) *Type {
	if c == nil {
		return nil
	}
	return c.types[name]
}

// Types returns every type, sorted by name.
func (c *Catalog) Types() []*Type {
	out := make([]*Type, 0, len(c.names))
	for _, n := range c.names {
		out = append(out, c.types[n])
	}
	return out
}

// Len is the number of types.
func (c *Catalog) Len() int { return len(c.names) }
