// Package format writes an event in the formats a destination can ask for: GitLab's streaming
// JSON (the default, passed through unchanged), OCSF 1.3.0 JSON and ArcSight CEF. It is pure: it
// reads the event's streaming JSON (design 5.2) and the event-type catalog, whose YAML holds each
// type's OCSF class and activity, and returns bytes; it does no I/O and keeps no state.
package format

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The format names, as a destination's config stores them.
const (
	// GitLab is GitLab's streaming JSON, byte for byte what the event log holds. The default.
	GitLab = "gitlab"
	// OCSF is one OCSF 1.3.0 event (JSON object) per audit event.
	OCSF = "ocsf"
	// CEF is one ArcSight CEF:0 line per audit event, without a trailing newline.
	CEF = "cef"
)

// Names returns the format names, the default first.
func Names() []string { return []string{GitLab, OCSF, CEF} }

// Sentinel errors of Check.
var (
	// ErrUnknown: the name is not one of Names.
	ErrUnknown = errors.New("unknown output format")
	// ErrNotForCategory: the format exists but the category's protocol cannot carry it.
	ErrNotForCategory = errors.New("output format not available for this destination category")
)

// categoryFormats lists, per destination category, the formats its protocol can carry. JSON
// stores and JSON APIs (object keys ending in .json, Cloud Logging's jsonPayload, Datadog's log
// intake) take only JSON; a byte stream (an HTTP body, a Kafka record) takes any; syslog's
// message is GitLab's JSON or CEF, as SIEM syslog collectors expect (issue 16).
var categoryFormats = map[string][]string{
	"http":    {GitLab, OCSF, CEF},
	"aws":     {GitLab, OCSF},
	"gcs":     {GitLab, OCSF},
	"gcp":     {GitLab, OCSF},
	"splunk":  {GitLab, OCSF},
	"kafka":   {GitLab, OCSF, CEF},
	"syslog":  {GitLab, CEF},
	"datadog": {GitLab, OCSF},
}

// ForCategory returns the formats a destination of category may use, the default first, or nil
// for a category this package does not know.
func ForCategory(category string) []string {
	return slices.Clone(categoryFormats[category])
}

// Check reports whether a destination of category may use the format name; "" means GitLab.
// The error wraps ErrUnknown or ErrNotForCategory and names the formats that are allowed.
func Check(category, name string) error {
	if name == "" {
		name = GitLab
	}
	if !slices.Contains(Names(), name) {
		return fmt.Errorf("%w %q: must be one of %s", ErrUnknown, name, strings.Join(Names(), ", "))
	}
	allowed, ok := categoryFormats[category]
	if !ok {
		// A category added without an entry gets only the default until someone decides.
		allowed = []string{GitLab}
	}
	if !slices.Contains(allowed, name) {
		return fmt.Errorf("%w: %q cannot be sent to a %s destination; use one of %s", ErrNotForCategory, name, category, strings.Join(allowed, ", "))
	}
	return nil
}

// ContentType is the media type of one event in format name, for protocols that label bodies.
func ContentType(name string) string {
	if name == CEF {
		return "text/plain; charset=utf-8"
	}
	return "application/json"
}
