package httpgzip

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestAccepts(t *testing.T) {
	for v, want := range map[string]bool{
		"":                 false,
		"gzip":             true,
		"deflate, gzip":    true,
		"GZIP;q=0.5":       true,
		"gzip;q=0":         false,
		"gzip; q=0.000":    false,
		"br, x-gzip":       false,
		"identity, *;q=0":  false,
		"deflate,gzip;q=1": true,
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if v != "" {
			r.Header.Set("Accept-Encoding", v)
		}
		if got := Accepts(r); got != want {
			t.Errorf("Accepts(%q) = %v, want %v", v, got, want)
		}
	}
}
