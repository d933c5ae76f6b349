// Package destination defines what a streaming destination is: its filters (Compile, Filter)
// and its configuration. ParseConfig validates and normalizes a destination's per-category
// config as GitLab does (http, aws, gcp) plus our gcs and splunk categories and batching;
// ValidateSecret, ValidateName and ValidateVerificationToken check the rest of what a user
// saves, and NewVerificationToken, NewSigningSecret and DefaultName make GitLab's defaults.
// Custom header values are secrets, so a Config keeps them apart from the JSON to store, and
// ConfigWithHeaders puts them back for the API. Problems are reported all at once as typed
// errors with stable codes (FilterError, ConfigError). The Destination contract, registry and
// error classification come with the delivery engine.
package destination
