package web

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/auditstream/auditstream/internal/destination"
)

// field is one config field of a category's form. Key is the config key (GitLab's name).
type field struct {
	Key, Label, Kind, Help string // Kind: text, url, checkbox
	Required               bool
}

// categoryInfo describes a destination category's form.
type categoryInfo struct {
	Category, Title string
	Fields          []field
	// The secretToken: how it is asked for. Only http's can be shown again (the stream page's
	// token section), as in GitLab.
	SecretLabel, SecretKind, SecretHelp string
	SecretRequired                      bool
	// Kept are the config keys the form does not show (a private CA, a syslog facility): an
	// update from the form keeps their stored values. http's headers are kept by the service.
	Kept []string
	// Formats are the output formats (config.format) the category's protocol can carry, the
	// default first; the form offers a choice when there is one.
	Formats []formatOption
}

// formatOption is one output format as the form's select offers it.
type formatOption struct{ Name, Title string }

// formatTitles name the output formats for people.
var formatTitles = map[string]string{"gitlab": "GitLab JSON (default)", "ocsf": "OCSF JSON", "cef": "CEF (ArcSight)"}

// categoriesOf makes the forms of the registry's categories, in its order: each category's
// package says which fields it has and how its secret is asked for (destination.Type).
func categoriesOf(types *destination.Registry) []categoryInfo {
	var out []categoryInfo
	for _, t := range types.Types() {
		ci := categoryInfo{Category: t.Category, Title: t.Title, SecretLabel: t.Secret.Label, SecretKind: t.Secret.Kind,
			SecretHelp: t.Secret.Help, SecretRequired: !t.Secret.Optional}
		for _, name := range destination.Formats(t.Category) {
			ci.Formats = append(ci.Formats, formatOption{Name: name, Title: cmp.Or(formatTitles[name], name)})
		}
		if ci.SecretKind == "" {
			ci.SecretKind = "password"
		}
		for _, f := range t.Fields {
			if f.Kind == "" {
				if f.Key != "headers" {
					ci.Kept = append(ci.Kept, f.Key)
				}
				continue // not asked for by the form: the API's
			}
			ci.Fields = append(ci.Fields, field{Key: f.Key, Label: f.Label, Kind: f.Kind, Help: f.Help, Required: f.Required})
		}
		out = append(out, ci)
	}
	return out
}

func (u *UI) categoryOf(c string) (categoryInfo, bool) {
	for _, ci := range u.categories {
		if ci.Category == c {
			return ci, true
		}
	}
	return categoryInfo{}, false
}

// streamForm is a destination's settings as the form shows and posts them.
type streamForm struct {
	Info   categoryInfo
	Name   string
	Active bool
	Values map[string]string // text fields
	Checks map[string]bool   // checkbox fields
	Secret string            // as typed; never filled in from the stored value
	Format string            // config.format; "" is the default
	// Batch and delivery (config.batch, config.delivery).
	Batch                          bool
	MaxEvents, MaxBytes, MaxWaitMs string
	Concurrency                    string
	Ordered, BufferWhilePaused     bool
}

// formFromConfig fills the form from a stored config.
func formFromConfig(ci categoryInfo, name string, active bool, config []byte) streamForm {
	f := streamForm{Info: ci, Name: name, Active: active, Values: map[string]string{}, Checks: map[string]bool{}}
	var cfg map[string]json.RawMessage
	_ = json.Unmarshal(config, &cfg)
	for _, fd := range ci.Fields {
		if fd.Kind == "checkbox" {
			var b bool
			_ = json.Unmarshal(cfg[fd.Key], &b)
			f.Checks[fd.Key] = b
			continue
		}
		var s string
		_ = json.Unmarshal(cfg[fd.Key], &s)
		f.Values[fd.Key] = s
	}
	_ = json.Unmarshal(cfg["format"], &f.Format)
	var b struct{ MaxEvents, MaxBytes, MaxWaitMs *int }
	if raw, ok := cfg["batch"]; ok && json.Unmarshal(raw, &b) == nil {
		f.Batch = true
		f.MaxEvents, f.MaxBytes, f.MaxWaitMs = intText(b.MaxEvents), intText(b.MaxBytes), intText(b.MaxWaitMs)
	}
	var d struct {
		Concurrency                *int
		Ordered, BufferWhilePaused bool
	}
	if raw, ok := cfg["delivery"]; ok && json.Unmarshal(raw, &d) == nil {
		f.Concurrency, f.Ordered, f.BufferWhilePaused = intText(d.Concurrency), d.Ordered, d.BufferWhilePaused
	}
	return f
}

func intText(n *int) string {
	if n == nil {
		return ""
	}
	return strconv.Itoa(*n)
}

// FormatName is the format the form selects: the stored or posted one, else the default.
func (f streamForm) FormatName() string { return cmp.Or(f.Format, "gitlab") }

// formFromRequest reads a posted form.
func formFromRequest(ci categoryInfo, r *http.Request) streamForm {
	f := streamForm{Info: ci, Name: strings.TrimSpace(r.PostFormValue("name")), Active: r.PostFormValue("active") == "on",
		Values: map[string]string{}, Checks: map[string]bool{}, Secret: r.PostFormValue("secret_token"),
		Batch: r.PostFormValue("batch") == "on", MaxEvents: strings.TrimSpace(r.PostFormValue("batch_max_events")),
		MaxBytes: strings.TrimSpace(r.PostFormValue("batch_max_bytes")), MaxWaitMs: strings.TrimSpace(r.PostFormValue("batch_max_wait_ms")),
		Concurrency: strings.TrimSpace(r.PostFormValue("concurrency")), Ordered: r.PostFormValue("ordered") == "on",
		BufferWhilePaused: r.PostFormValue("buffer_while_paused") == "on", Format: r.PostFormValue("format")}
	for _, fd := range ci.Fields {
		if fd.Kind == "checkbox" {
			f.Checks[fd.Key] = r.PostFormValue("config_"+fd.Key) == "on"
		} else {
			f.Values[fd.Key] = strings.TrimSpace(r.PostFormValue("config_" + fd.Key))
		}
	}
	return f
}

// config builds the config JSON. Empty fields are left out, so that the API's own defaults
// and messages apply; numbers that are not whole numbers are the form's own problems.
func (f streamForm) config() ([]byte, []string) {
	cfg := map[string]any{}
	for _, fd := range f.Info.Fields {
		switch {
		case fd.Kind == "checkbox":
			if f.Checks[fd.Key] {
				cfg[fd.Key] = true
			}
		case f.Values[fd.Key] != "":
			cfg[fd.Key] = f.Values[fd.Key]
		}
	}
	if f.Format != "" && f.Format != "gitlab" {
		cfg["format"] = f.Format // checked by the service, like every key
	}
	var problems []string
	number := func(label, v string, into map[string]any, key string) {
		if v == "" {
			return
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s must be a whole number.", label))
			return
		}
		into[key] = n
	}
	if f.Batch {
		b := map[string]any{}
		number("Events per batch", f.MaxEvents, b, "maxEvents")
		number("Bytes per batch", f.MaxBytes, b, "maxBytes")
		number("Wait for a batch", f.MaxWaitMs, b, "maxWaitMs")
		cfg["batch"] = b
	}
	d := map[string]any{}
	number("Requests in flight", f.Concurrency, d, "concurrency")
	if f.Ordered {
		d["ordered"] = true
	}
	if f.BufferWhilePaused {
		d["bufferWhilePaused"] = true
	}
	if len(d) > 0 {
		cfg["delivery"] = d
	}
	out, _ := json.Marshal(cfg)
	return out, problems
}

// withKept returns cfg, the form's config, with the stored values of the keys the form does not
// show (categoryInfo.Kept), so that saving the form does not drop what the API set.
func withKept(ci categoryInfo, cfg, stored []byte) []byte {
	if len(ci.Kept) == 0 {
		return cfg
	}
	var form, old map[string]json.RawMessage
	if json.Unmarshal(cfg, &form) != nil || json.Unmarshal(stored, &old) != nil {
		return cfg
	}
	for _, k := range ci.Kept {
		if v, ok := old[k]; ok {
			if _, set := form[k]; !set {
				form[k] = v
			}
		}
	}
	out, err := json.Marshal(form)
	if err != nil {
		return cfg
	}
	return out
}
