package secret

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const testAD = "destination:42:secret_token"

// newKey returns a random key.
func newKey(t *testing.T) []byte {
	t.Helper()
	key := make([]byte, KeySize)
	_, err := rand.Read(key)
	require.NoError(t, err)
	return key
}

// setup returns a Box with one random key, and that key.
func setup(t *testing.T) (*Box, []byte) {
	t.Helper()
	key := newKey(t)
	box, err := New(key)
	require.NoError(t, err)
	return box, key
}

// requireNoKey fails when s contains key in raw, hex or any base64 form.
func requireNoKey(t *testing.T, s string, keys ...[]byte) {
	t.Helper()
	for _, key := range keys {
		forms := []string{
			string(key),
			hex.EncodeToString(key),
			strings.ToUpper(hex.EncodeToString(key)),
			base64.StdEncoding.EncodeToString(key),
			base64.RawStdEncoding.EncodeToString(key),
			base64.URLEncoding.EncodeToString(key),
			base64.RawURLEncoding.EncodeToString(key),
			fmt.Sprint(key), // [12 34 ...]
			// An AES key schedule starts with the key as 32-bit words.
			fmt.Sprint(binary.BigEndian.Uint32(key[0:4]), " ", binary.BigEndian.Uint32(key[4:8])),
			fmt.Sprint(binary.LittleEndian.Uint32(key[0:4]), " ", binary.LittleEndian.Uint32(key[4:8])),
		}
		for _, form := range forms {
			require.NotContains(t, s, form, "output leaks a key")
		}
	}
}

// requireOpenErr fails unless err is target and its message holds neither the plaintext nor the key.
func requireOpenErr(t *testing.T, err, target error, plaintext string, key []byte) {
	t.Helper()
	require.ErrorIs(t, err, target)
	if plaintext != "" {
		require.NotContains(t, err.Error(), plaintext)
	}
	requireNoKey(t, err.Error(), key)
}

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		plaintext []byte
		ad        []byte
	}{
		{name: "token", plaintext: []byte("whsec_5b1c0ffee"), ad: []byte(testAD)},
		{name: "empty plaintext", plaintext: []byte{}, ad: []byte(testAD)},
		{name: "nil associated data", plaintext: []byte("x"), ad: nil},
		{name: "binary", plaintext: []byte{0, 1, 2, 0xff, 0xfe, '\n', ':'}, ad: []byte{0, ':'}},
		{name: "large", plaintext: bytes.Repeat([]byte("credentials "), 10_000), ad: []byte(testAD)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			box, _ := setup(t)

			sealed, err := box.Seal(tt.plaintext, tt.ad)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(sealed, "v1:"+box.KeyIDs()[0]+":"), sealed)
			require.Equal(t, 2, strings.Count(sealed, ":"), "payload is base64url, no colons")
			for _, c := range sealed {
				require.True(t, c > ' ' && c < 0x7f, "sealed value is printable ASCII")
			}

			got, err := box.Open(sealed, tt.ad)
			require.NoError(t, err)
			require.Equal(t, len(tt.plaintext), len(got))
			require.True(t, bytes.Equal(tt.plaintext, got))

			again, err := box.Seal(tt.plaintext, tt.ad)
			require.NoError(t, err)
			require.NotEqual(t, sealed, again, "every seal uses a fresh nonce")
		})
	}
}

func TestSealedValueHidesPlaintext(t *testing.T) {
	t.Parallel()
	box, _ := setup(t)
	plaintext := "super-secret-signing-key"

	sealed, err := box.Seal([]byte(plaintext), []byte(testAD))
	require.NoError(t, err)

	require.NotContains(t, sealed, plaintext)
	require.NotContains(t, sealed, base64.RawURLEncoding.EncodeToString([]byte(plaintext)))
	require.NotContains(t, sealed, testAD, "associated data is authenticated, not stored")
}

func TestOpenAssociatedDataMismatch(t *testing.T) {
	t.Parallel()
	box, key := setup(t)
	plaintext := "hunter2-token"
	sealed, err := box.Seal([]byte(plaintext), []byte(testAD))
	require.NoError(t, err)

	for _, ad := range []string{
		"destination:43:secret_token",   // copied to another row
		"destination:42:signing_secret", // copied to another field
		"destination:42:secret_token ",
		"",
	} {
		_, err := box.Open(sealed, []byte(ad))
		requireOpenErr(t, err, ErrDecrypt, plaintext, key)
	}
}

func TestOpenTampered(t *testing.T) {
	t.Parallel()
	box, key := setup(t)
	plaintext := "hunter2-token"
	sealed, err := box.Seal([]byte(plaintext), []byte(testAD))
	require.NoError(t, err)
	header, encoded := sealed[:headerLen], sealed[headerLen:]
	payload, err := base64.RawURLEncoding.DecodeString(encoded)
	require.NoError(t, err)

	// Flipping any bit of the nonce, ciphertext or tag is detected.
	for i := range payload {
		tampered := bytes.Clone(payload)
		tampered[i] ^= 0x01
		_, err := box.Open(header+base64.RawURLEncoding.EncodeToString(tampered), []byte(testAD))
		requireOpenErr(t, err, ErrDecrypt, plaintext, key)
	}

	// Cutting bytes off the end, or adding some, is detected.
	for _, changed := range [][]byte{payload[:len(payload)-1], append(bytes.Clone(payload), 0)} {
		_, err := box.Open(header+base64.RawURLEncoding.EncodeToString(changed), []byte(testAD))
		requireOpenErr(t, err, ErrDecrypt, plaintext, key)
	}
}

func TestOpenHeaderIsAuthenticated(t *testing.T) {
	t.Parallel()
	oldKey, newKey := newKey(t), newKey(t)
	box, err := New(newKey, oldKey)
	require.NoError(t, err)
	sealed, err := box.Seal([]byte("token"), []byte(testAD))
	require.NoError(t, err)

	// Relabelling the value with the other key's id does not make it open with that key.
	relabelled := "v1:" + box.KeyIDs()[1] + ":" + sealed[headerLen:]
	_, err = box.Open(relabelled, []byte(testAD))
	requireOpenErr(t, err, ErrDecrypt, "token", oldKey)
}

func TestOpenMalformed(t *testing.T) {
	t.Parallel()
	box, key := setup(t)
	id := box.KeyIDs()[0]
	short := base64.RawURLEncoding.EncodeToString(make([]byte, minSealedLen-1))
	valid, err := box.Seal([]byte("token"), []byte(testAD))
	require.NoError(t, err)

	for _, sealed := range []string{
		"",
		"token",
		"v1",
		"v1:",
		"v1::",
		"v1:" + id,
		"v1:" + id + ":",
		"v2:" + valid[3:],                   // unknown version
		"V1:" + valid[3:],                   // versions are lower case
		"v1:" + strings.ToUpper(id) + ":AA", // ids are lower-case hex
		"v1:abc:" + valid[headerLen:],       // id too short
		"v1:" + id + "0:" + valid[headerLen:],
		"v1:zzzzzzzz:" + valid[headerLen:],
		"v1:" + id + ":" + short, // too short for nonce and tag
		"v1:" + id + ":!!!!",
		"v1:" + id + ":" + valid[headerLen:] + "=", // padding is not used
		"v1:" + id + ":" + base64.StdEncoding.EncodeToString(make([]byte, 40)),
		"v1:" + id + ":" + strings.ReplaceAll(valid[headerLen:], valid[headerLen:headerLen+1], "+"),
		valid + ":extra",
		"\x00\xff\xfe:" + id + ":" + valid[headerLen:],
		strings.Repeat(":", 100),
	} {
		_, err := box.Open(sealed, []byte(testAD))
		requireOpenErr(t, err, ErrMalformed, "token", key)
	}
}

func TestOpenTruncatedNeverSucceeds(t *testing.T) {
	t.Parallel()
	box, key := setup(t)
	sealed, err := box.Seal([]byte("token"), []byte(testAD))
	require.NoError(t, err)

	for n := range len(sealed) {
		_, err := box.Open(sealed[:n], []byte(testAD))
		require.Error(t, err)
		if n < headerLen+base64.RawURLEncoding.EncodedLen(minSealedLen) {
			requireOpenErr(t, err, ErrMalformed, "token", key)
		} else {
			require.True(t, errors.Is(err, ErrMalformed) || errors.Is(err, ErrDecrypt), "%d: %v", n, err)
		}
	}
}

func TestOpenUnknownKey(t *testing.T) {
	t.Parallel()
	box, key := setup(t)
	other, _ := setup(t)
	sealed, err := box.Seal([]byte("token"), []byte(testAD))
	require.NoError(t, err)

	_, err = other.Open(sealed, []byte(testAD))
	requireOpenErr(t, err, ErrUnknownKey, "token", key)
	require.Contains(t, err.Error(), box.KeyIDs()[0], "the error names the missing key id")

	_, err = (&Box{}).Open(sealed, []byte(testAD))
	require.ErrorIs(t, err, ErrUnknownKey)
}

func TestRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := newKey(t), newKey(t)
	oldBox, err := New(oldKey)
	require.NoError(t, err)
	rotated, err := New(newKey, oldKey)
	require.NoError(t, err)
	newBox, err := New(newKey)
	require.NoError(t, err)
	require.Equal(t, []string{newBox.KeyIDs()[0], oldBox.KeyIDs()[0]}, rotated.KeyIDs())

	// Values sealed before the rotation still open.
	before, err := oldBox.Seal([]byte("old token"), []byte(testAD))
	require.NoError(t, err)
	got, err := rotated.Open(before, []byte(testAD))
	require.NoError(t, err)
	require.Equal(t, "old token", string(got))

	// New values are sealed with the new key only.
	after, err := rotated.Seal([]byte("new token"), []byte(testAD))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(after, "v1:"+newBox.KeyIDs()[0]+":"))
	got, err = newBox.Open(after, []byte(testAD))
	require.NoError(t, err)
	require.Equal(t, "new token", string(got))
	_, err = oldBox.Open(after, []byte(testAD))
	require.ErrorIs(t, err, ErrUnknownKey)

	// Once the old key is dropped, values still sealed with it are reported, not misread.
	_, err = newBox.Open(before, []byte(testAD))
	require.ErrorIs(t, err, ErrUnknownKey)
}

func TestNew(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	tests := []struct {
		name    string
		keys    [][]byte
		wantErr string
	}{
		{name: "no keys", keys: nil, wantErr: "no keys"},
		{name: "short key", keys: [][]byte{key[:16]}, wantErr: "key 1 has 16 bytes, want 32"},
		{name: "long second key", keys: [][]byte{key, append(bytes.Clone(key), 1)}, wantErr: "key 2 has 33 bytes"},
		{name: "duplicate", keys: [][]byte{key, newKey(t), key}, wantErr: "key 3 has the same id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tt.keys...)
			require.ErrorContains(t, err, tt.wantErr)
			requireNoKey(t, err.Error(), key)
		})
	}
}

func TestKeyIDIsStable(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{0x42}, KeySize)
	a, err := New(key)
	require.NoError(t, err)
	b, err := New(bytes.Clone(key))
	require.NoError(t, err)

	require.Equal(t, a.KeyIDs(), b.KeyIDs())
	require.Len(t, a.KeyIDs()[0], keyIDLen)
	require.True(t, validKeyID(a.KeyIDs()[0]))
	// The id is not a prefix of the key's plain SHA-256 hex, thanks to the label.
	require.NotContains(t, fmt.Sprintf("%x", key), a.KeyIDs()[0])
}

func TestZeroBoxCannotSeal(t *testing.T) {
	t.Parallel()
	_, err := Box{}.Seal([]byte("token"), []byte(testAD))
	require.ErrorContains(t, err, "no keys")
}

func TestBoxPrintingAndLoggingShowOnlyKeyIDs(t *testing.T) {
	t.Parallel()
	k1, k2 := newKey(t), newKey(t)
	box, err := New(k1, k2)
	require.NoError(t, err)

	// A Box held in an unexported field is printed by reflection, not through its methods.
	holder := struct {
		name string
		box  *Box
	}{name: "server", box: box}

	var outputs []string
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%t", "%p", "%e", "%c", "%U", "%T"}
	for _, verb := range verbs {
		outputs = append(outputs,
			fmt.Sprintf(verb, box), fmt.Sprintf(verb, *box),
			fmt.Sprintf(verb, holder), fmt.Sprintf(verb, &holder), fmt.Sprintf(verb, []any{box}))
	}
	outputs = append(outputs, fmt.Sprint(box), fmt.Sprintln(*box), box.String())

	var logs bytes.Buffer
	for _, h := range []slog.Handler{
		slog.NewTextHandler(&logs, nil),
		slog.NewJSONHandler(&logs, nil),
	} {
		logger := slog.New(h)
		logger.Info("loaded", "box", box)
		logger.Info("loaded", "box", *box)
		logger.Info("loaded", slog.Any("box", box))
		logger.With("box", box).Info("loaded")
	}
	outputs = append(outputs, logs.String())

	for _, out := range outputs {
		requireNoKey(t, out, k1, k2)
	}
	want := "secret.Box{keys: " + box.KeyIDs()[0] + " (seals), " + box.KeyIDs()[1] + "}"
	require.Equal(t, want, fmt.Sprintf("%v", box))
	require.Equal(t, want, fmt.Sprintf("%#v", *box))
	require.Equal(t, fmt.Sprintf("%q", want), fmt.Sprintf("%q", box))
	require.Contains(t, logs.String(), box.KeyIDs()[0])
	require.Contains(t, logs.String(), box.KeyIDs()[1])
}
