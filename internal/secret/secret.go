package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

const (
	// KeySize is the length of a key in bytes (AES-256).
	KeySize = 32

	version      = "v1"
	keyIDLen     = 8                    // hex digits of the key fingerprint
	headerLen    = 2 + 1 + keyIDLen + 1 // "v1:" + key id + ":"
	nonceSize    = 12
	tagSize      = 16
	keyIDLabel   = "auditstream secret key id v1\x00"
	minSealedLen = nonceSize + tagSize
)

// payloadEncoding encodes nonce||ciphertext||tag: URL-safe so sealed values can travel in URLs and
// headers, unpadded because the length is implied.
var payloadEncoding = base64.RawURLEncoding.Strict()

// Box seals and opens secrets with AES-256-GCM. The first key seals; every key opens, so a Box
// built from (new, old) reads values sealed with either and writes only with new.
//
// A Box is immutable and safe for concurrent use. The zero Box holds no keys: Seal fails and Open
// returns [ErrUnknownKey]. Printing or logging a Box shows only its key ids.
type Box struct {
	keys []boxKey // keys[0] seals
}

// boxKey is one key of a Box. The AEAD (whose AES key schedule starts with the key itself) is
// reachable only through closures: printers that walk values by reflection, such as fmt with an
// unsupported verb, go-spew or go-cmp, show a func address instead of key material.
type boxKey struct {
	id   string
	seal func(plaintext, aad []byte) []byte        // returns nonce||ciphertext||tag
	open func(payload, aad []byte) ([]byte, error) // reads the nonce from payload
}

// New returns a Box holding keys, each [KeySize] bytes; the first one seals. It fails when there
// are no keys, when a key has the wrong length, or when two keys have the same id. New does not
// keep the slices: the caller may clear them afterwards.
func New(keys ...[]byte) (*Box, error) {
	if len(keys) == 0 {
		return nil, errors.New("secret: no keys")
	}
	b := &Box{keys: make([]boxKey, 0, len(keys))}
	for i, key := range keys {
		if len(key) != KeySize {
			return nil, fmt.Errorf("secret: key %d has %d bytes, want %d", i+1, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("secret: key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, fmt.Errorf("secret: key %d: %w", i+1, err)
		}
		id := keyID(key)
		for j, k := range b.keys {
			if k.id == id {
				return nil, fmt.Errorf("secret: key %d has the same id %s as key %d", i+1, id, j+1)
			}
		}
		b.keys = append(b.keys, boxKey{
			id:   id,
			seal: func(plaintext, aad []byte) []byte { return aead.Seal(nil, nil, plaintext, aad) },
			open: func(payload, aad []byte) ([]byte, error) { return aead.Open(nil, nil, payload, aad) },
		})
	}
	return b, nil
}

// keyID returns the fingerprint of key: the first 8 hex digits of SHA-256 over a fixed label and
// the key. It identifies the key without revealing anything useful about it.
func keyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte(keyIDLabel))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil))[:keyIDLen]
}

// KeyIDs returns the ids of the Box's keys, the sealing key first.
func (b Box) KeyIDs() []string {
	ids := make([]string, len(b.keys))
	for i, k := range b.keys {
		ids[i] = k.id
	}
	return ids
}

// Seal encrypts plaintext with the Box's first key and returns "v1:<key id>:<base64url>".
// associatedData names where the value will be stored (for example "destination:42:secret_token");
// the same bytes must be given to [Box.Open]. Each call uses a fresh random nonce, so sealing the
// same plaintext twice gives different strings. Seal fails only when the Box holds no keys.
func (b Box) Seal(plaintext, associatedData []byte) (string, error) {
	if len(b.keys) == 0 {
		return "", errors.New("secret: seal: box has no keys")
	}
	k := b.keys[0]
	header := version + ":" + k.id + ":"
	payload := k.seal(plaintext, aad(header, associatedData))
	return header + payloadEncoding.EncodeToString(payload), nil
}

// Open decrypts a value returned by [Box.Seal] with the same associatedData. It returns
// [ErrMalformed] when sealed cannot be parsed, [ErrUnknownKey] when its key is not in the Box, and
// [ErrDecrypt] when it was altered or associatedData differs.
func (b Box) Open(sealed string, associatedData []byte) ([]byte, error) {
	ver, rest, ok := strings.Cut(sealed, ":")
	if !ok {
		return nil, fmt.Errorf("%w: missing separator", ErrMalformed)
	}
	if ver != version {
		return nil, fmt.Errorf("%w: unsupported format version", ErrMalformed)
	}
	id, encoded, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, fmt.Errorf("%w: missing separator", ErrMalformed)
	}
	if !validKeyID(id) {
		return nil, fmt.Errorf("%w: bad key id", ErrMalformed)
	}
	payload, err := payloadEncoding.DecodeString(encoded)
	if err != nil {
		// The base64 error holds only an offset, but it adds nothing for the caller.
		return nil, fmt.Errorf("%w: payload is not base64url", ErrMalformed)
	}
	if len(payload) < minSealedLen {
		return nil, fmt.Errorf("%w: payload too short", ErrMalformed)
	}
	for _, k := range b.keys {
		if k.id != id {
			continue
		}
		plaintext, err := k.open(payload, aad(sealed[:headerLen], associatedData))
		if err != nil {
			return nil, ErrDecrypt
		}
		return plaintext, nil
	}
	return nil, fmt.Errorf("%w (key id %s)", ErrUnknownKey, id)
}

// aad returns the data GCM authenticates besides the ciphertext: the fixed-length header, so the
// version and key id cannot be swapped, followed by the caller's associated data.
func aad(header string, associatedData []byte) []byte {
	out := make([]byte, 0, len(header)+len(associatedData))
	out = append(out, header...)
	return append(out, associatedData...)
}

func validKeyID(id string) bool {
	if len(id) != keyIDLen {
		return false
	}
	for _, c := range []byte(id) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// String describes the Box by its key ids, for example "secret.Box{keys: 1a2b3c4d (seals), 5e6f7a8b}".
// It never shows key material.
func (b Box) String() string {
	var s strings.Builder
	s.WriteString("secret.Box{keys: ")
	for i, k := range b.keys {
		if i > 0 {
			s.WriteString(", ")
		}
		s.WriteString(k.id)
		if i == 0 {
			s.WriteString(" (seals)")
		}
	}
	s.WriteString("}")
	return s.String()
}

// Format implements [fmt.Formatter] so that every verb, "%#v" and "%d" included, prints String
// (quoted for "%q") rather than the Box's fields.
func (b Box) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", b.String())
		return
	}
	io.WriteString(f, b.String())
}

// LogValue implements [slog.LogValuer]: a group with the key ids, the sealing key first.
func (b Box) LogValue() slog.Value {
	return slog.GroupValue(slog.Any("key_ids", b.KeyIDs()))
}
