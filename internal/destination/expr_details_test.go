package destination

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/google/cel-go/common/types"
	"github.com/stretchr/testify/require"
)

// FuzzDetailsFind checks that finding a key in details by scanning gives what the whole decoded
// map gives, for any details object as events store them (compact, valid UTF-8) and any key.
func FuzzDetailsFind(f *testing.F) {
	f.Add(`{"custom_message":"token","n":1.5,"b":true,"z":null,"o":{"a":[1,"x"]}}`, "custom_message")
	f.Add(`{"a":1,"a":2}`, "a")
	f.Add(`{"k\u00e9y":"v","k\"q":"w"}`, "kéy")
	f.Add(`{"k\"q":"w\n"}`, `k"q`)
	f.Add(`{"a": 1e400}`, "a")
	f.Add(`{}`, "missing")
	f.Fuzz(func(t *testing.T, details, key string) {
		if !utf8.ValidString(details) {
			return // ingest refuses such details
		}
		var buf bytes.Buffer
		if json.Compact(&buf, []byte(details)) != nil || buf.Len() == 0 || buf.Bytes()[0] != '{' {
			return
		}
		lazy := &detailsMap{raw: buf.Bytes()}
		got, ok := lazy.Find(types.String(key))
		want, wantOK := (&detailsMap{raw: buf.Bytes()}).all().Find(types.String(key))
		require.Equal(t, wantOK, ok, "found %q in %s", key, buf.Bytes())
		if ok {
			require.Equal(t, types.True, got.Equal(want), "%q in %s: %v, decoded whole: %v", key, buf.Bytes(), got, want)
		}
	})
}
