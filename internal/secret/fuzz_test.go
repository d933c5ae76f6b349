package secret

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzOpen feeds arbitrary sealed values and associated data to Open. It must never panic, must
// fail only with the package's sentinels, and must never accept anything but a value really sealed
// with the fuzz key, for which it returns the original plaintext.
func FuzzOpen(f *testing.F) {
	key := bytes.Repeat([]byte{0x5a}, KeySize)
	other := bytes.Repeat([]byte{0xa5}, KeySize)
	box, err := New(key, other)
	require.NoError(f, err)
	otherBox, err := New(other)
	require.NoError(f, err)
	plaintext := []byte("fuzz plaintext")
	ad := []byte(testAD)

	sealed, err := box.Seal(plaintext, ad)
	require.NoError(f, err)
	byOther, err := otherBox.Seal(plaintext, ad)
	require.NoError(f, err)
	for _, seed := range []struct {
		sealed string
		ad     []byte
	}{
		{sealed, ad},
		{byOther, ad},
		{sealed, []byte("destination:43:secret_token")},
		{sealed[:len(sealed)-1], ad},
		{sealed + "A", ad},
		{"v1:00000000:" + sealed[headerLen:], ad},
		{"v2" + sealed[2:], ad},
		{"", nil},
		{"v1:", nil},
		{"v1::", nil},
		{"::::", ad},
		{"v1:" + box.KeyIDs()[0] + ":\n\r", ad},
		{"\xff\xfe\x00", []byte{0}},
	} {
		f.Add(seed.sealed, seed.ad)
	}

	f.Fuzz(func(t *testing.T, sealed string, associatedData []byte) {
		got, err := box.Open(sealed, associatedData)
		if err != nil {
			require.Nil(t, got)
			require.True(t,
				errors.Is(err, ErrMalformed) || errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrDecrypt),
				"unexpected error %v", err)
			requireNoKey(t, err.Error(), key, other)
			return
		}
		require.Equal(t, plaintext, got)
		require.Equal(t, ad, associatedData)
	})
}
