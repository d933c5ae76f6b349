package web

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWithKeptKeepsWhatTheFormDoesNotShow: saving a stream's form keeps the stored values of
// the config keys only the API sets (a private CA, a syslog facility), and the form's own
// values win.
func TestWithKeptKeepsWhatTheFormDoesNotShow(t *testing.T) {
	ci := categoryInfo{Category: "syslog", Kept: []string{"facility", "caCertificate"}}
	stored := []byte(`{"address":"old:514","appName":"gitlab","caCertificate":"PEM","facility":4,"tls":true}`)
	got := withKept(ci, []byte(`{"address":"new:6514","tls":true}`), stored)
	require.JSONEq(t, `{"address":"new:6514","caCertificate":"PEM","facility":4,"tls":true}`, string(got))
	require.JSONEq(t, `{"caCertificate":"PEM","facility":2}`, string(withKept(ci, []byte(`{"facility":2}`), stored)))
	require.Equal(t, `{"url":"x"}`, string(withKept(categoryInfo{}, []byte(`{"url":"x"}`), stored)))
}
