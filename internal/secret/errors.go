package secret

import "errors"

// Errors returned by [Box.Open]; compare with [errors.Is]. None of them carries the plaintext,
// the sealed value or key material.
var (
	// ErrMalformed means the sealed value is not of the form "v1:<key id>:<base64url>", uses an
	// unknown format version, or is too short to hold a nonce and an authentication tag. The
	// value was damaged or never came from [Box.Seal].
	ErrMalformed = errors.New("secret: malformed sealed value")
	// ErrUnknownKey means the value was sealed with a key the Box does not hold: a key was
	// removed from the rotation list too early, or the wrong key was configured.
	ErrUnknownKey = errors.New("secret: sealed with an unknown key")
	// ErrDecrypt means authentication failed: the ciphertext was altered, or the associated data
	// differs from the data it was sealed with (the value was copied to another place).
	ErrDecrypt = errors.New("secret: decryption failed")
)
