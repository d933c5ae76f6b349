package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseBody(t *testing.T) {
	one := `{"id":7,"event_type":"x","details":{"m":"a \"}{[\\\\","lg_sent_ns":123}}`
	other := `{"event_type":"y","id":9,"details":{"n":[1,{"id":5}]}}`
	for _, tc := range []struct {
		body string
		want []parsed
	}{
		{one, []parsed{{7, 123}}},
		{"[" + one + "," + other + "]", []parsed{{7, 123}, {9, 0}}},
		{" [ " + other + " ] ", []parsed{{9, 0}}},
	} {
		got, err := parseBody([]byte(tc.body), nil)
		if err != nil || len(got) != len(tc.want) {
			t.Fatalf("%s: %v %v", tc.body, got, err)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: event %d = %+v, want %+v", tc.body, i, got[i], tc.want[i])
			}
		}
	}
	for _, bad := range []string{"", "x", `{"id":1`, `["a]`, `}`} {
		if _, err := parseBody([]byte(bad), nil); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestReceiverCounts(t *testing.T) {
	r := newReceiver("t", "")
	srv := httptest.NewServer(r)
	defer srv.Close()
	post := func(body, id string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		req.Header.Set("Webhook-Id", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatal(err, resp)
		}
		resp.Body.Close()
	}
	post(`{"id":1}`, "1")
	post(`[{"id":2},{"id":3}]`, "2-3")
	post(`[{"id":3},{"id":4}]`, "3-4")
	post(`{"id":5}`, "6")
	st := r.stats()
	if st.requests != 4 || st.unique != 5 || st.dups != 1 || st.badID != 1 {
		t.Fatalf("%+v", st)
	}
	if m := r.missing([]int64{1, 2, 3, 4, 5, 6}); m != 1 {
		t.Fatalf("missing %d", m)
	}
}
