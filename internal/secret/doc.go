// Package secret encrypts destination secrets at rest: verification tokens, signing secrets,
// cloud credentials and custom header values.
//
// A [Box] holds one or more AES-256 keys. [Box.Seal] encrypts with the first key using AES-256-GCM
// and a random 96-bit nonce, and returns a printable string
//
//	v1:<key id>:<base64url(nonce || ciphertext || tag)>
//
// that can be stored in any text column. The key id is a short, non-secret fingerprint of the key
// (8 hex digits), so [Box.Open] knows which key to use without trying them all. Open accepts any
// key of the Box, which is how keys are rotated: put the new key first and keep the old ones after
// it until every stored value has been sealed again.
//
// Seal and Open take associated data that names the place the value belongs to, such as
// "destination:42:secret_token". It is authenticated but not stored: a sealed value copied to
// another row, or to another field of the same row, fails to open.
//
// [LoadKey] finds the keys: the AUDITSTREAM_SECRET_KEY environment variable if set, otherwise a
// key file in the data directory that is created on first start. Losing the key makes every
// sealed value unreadable, so the key file belongs in backups (kept apart from the database).
//
// Nothing in this package puts plaintext or key material into an error, a String result or a log
// value.
package secret
