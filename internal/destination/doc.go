// Package destination defines what a streaming destination is: the contract every category
// implements (Sender, Factory, Settings, Env, Failure and its classification), the registry of
// categories (Registry, Type) and what every category shares: its filters (Compile, Filter,
// including a CEL expression over the event, FilterSpec.Expression, evaluated on Vars), the
// JSON document rules of a config with its batch and delivery fields, and the typed errors
// with stable codes (FilterError, ConfigError).
//
// A category is one package (httpdest, s3dest, cloudlogging, gcsdest, splunkhec, ...) that
// exports a *Type: its config's fields and rules (Type.Parse, which returns the typed config
// its sender takes, so a config is decoded once), its secret's rule (Type.Secret), its sender
// (Type.New), its form and its summary. This package never imports them: internal/app wires the
// one list (NewRegistry), as Alertmanager's notify and Vault's audit backends do.
//
// Registry.ParseConfig validates and normalizes a config as GitLab does, Registry.ValidateSecret
// checks a secret; ValidateName and ValidateVerificationToken check the rest of what a user
// saves, and NewVerificationToken, NewSigningSecret and DefaultName make GitLab's defaults.
// Custom header values (http) are secrets, so a Config keeps them apart from the JSON to store,
// and ConfigWithHeaders puts them back for the API. Problems are reported all at once.
package destination
