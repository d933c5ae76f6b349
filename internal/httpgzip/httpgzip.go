// Package httpgzip decides whether an HTTP answer may be gzip-compressed, for the handlers that
// serve pages and files (the UI, GraphiQL).
package httpgzip

import (
	"net/http"
	"strings"
)

// Accepts reports whether the request's Accept-Encoding lists gzip with a non-zero quality.
func Accepts(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
