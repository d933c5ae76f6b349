package format_test

import (
	"bufio"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination/format"
	"github.com/auditstream/auditstream/internal/event"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

var loadCatalog = sync.OnceValues(func() (*event.Catalog, error) { return event.Load("") })

// setup returns an Encoder over the embedded catalog, as the service builds it.
func setup(tb testing.TB) (*format.Encoder, *event.Catalog) {
	tb.Helper()
	cat, err := loadCatalog()
	require.NoError(tb, err)
	return format.New(cat, format.Options{ProductVersion: "1.2.3"}), cat
}

// sample is one line of testdata/gitlab-audit-samples.ndjson (a copy of
// shared/reference/gitlab-audit-samples.ndjson, so tests run from a clean clone).
type sample struct {
	Source  string          `json:"source"`
	Section string          `json:"section"`
	Kind    string          `json:"kind"`
	Event   json.RawMessage `json:"event"`
}

// samples returns GitLab's documented events, each as the streaming JSON auditstream sends:
// decoded and encoded again by internal/event (id, created_at and the top-level fields where
// design 5.2 puts them). GitLab's log-file form has "time" instead of created_at; it is used as
// created_at, since an event without a time cannot be formatted.
func samples(tb testing.TB) []sample {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", "gitlab-audit-samples.ndjson"))
	require.NoError(tb, err)
	defer f.Close()
	var out []sample
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var s sample
		require.NoError(tb, json.Unmarshal(sc.Bytes(), &s))
		var ev event.Event
		require.NoError(tb, ev.UnmarshalJSON(s.Event), s.Section)
		if ev.CreatedAt.IsZero() {
			var logForm struct {
				Time time.Time `json:"time"`
			}
			require.NoError(tb, json.Unmarshal(s.Event, &logForm))
			ev.CreatedAt = logForm.Time.UTC()
		}
		require.False(tb, ev.CreatedAt.IsZero(), s.Section)
		s.Event = ev.AppendJSON(nil)
		out = append(out, s)
	}
	require.NoError(tb, sc.Err())
	require.Len(tb, out, 20, "the reference file has twenty samples")
	return out
}

func TestNames(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"gitlab", "ocsf", "cef"}, format.Names())
	names := format.Names()
	names[0] = "changed"
	require.Equal(t, "gitlab", format.Names()[0], "Names returns a copy")
}

func TestCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		category, name string
		err            error
	}{
		{"http", "", nil},
		{"http", "gitlab", nil},
		{"http", "ocsf", nil},
		{"http", "cef", nil},
		{"aws", "ocsf", nil},
		{"aws", "cef", format.ErrNotForCategory},
		{"gcs", "cef", format.ErrNotForCategory},
		{"gcp", "ocsf", nil},
		{"splunk", "ocsf", nil},
		{"syslog", "cef", nil},
		{"syslog", "ocsf", format.ErrNotForCategory},
		{"kafka", "cef", nil},
		{"datadog", "cef", format.ErrNotForCategory},
		{"http", "json", format.ErrUnknown},
		{"http", "OCSF", format.ErrUnknown},
		{"new_category", "gitlab", nil},
		{"new_category", "ocsf", format.ErrNotForCategory},
	} {
		err := format.Check(tc.category, tc.name)
		if tc.err == nil {
			require.NoError(t, err, "%s %s", tc.category, tc.name)
		} else {
			require.ErrorIs(t, err, tc.err, "%s %s", tc.category, tc.name)
		}
	}
	require.ErrorContains(t, format.Check("aws", "cef"), `"cef" cannot be sent to a aws destination; use one of gitlab, ocsf`)
	require.Equal(t, []string{"gitlab", "ocsf"}, format.ForCategory("gcs"))
	require.Nil(t, format.ForCategory("nope"))
	require.Equal(t, "application/json", format.ContentType("ocsf"))
	require.Equal(t, "text/plain; charset=utf-8", format.ContentType("cef"))
}

func TestAppend(t *testing.T) {
	t.Parallel()
	enc, _ := setup(t)
	s := samples(t)[7]
	for _, name := range []string{"", "gitlab"} {
		out, err := enc.Append([]byte("prefix"), name, s.Event)
		require.NoError(t, err)
		require.Equal(t, "prefix"+string(s.Event), string(out), "GitLab's JSON goes through unchanged")
	}
	ocsf, err := enc.AppendOCSF(nil, s.Event)
	require.NoError(t, err)
	out, err := enc.Append(nil, "ocsf", s.Event)
	require.NoError(t, err)
	require.Equal(t, ocsf, out)
	cef, err := enc.AppendCEF(nil, s.Event)
	require.NoError(t, err)
	out, err = enc.Append(nil, "cef", s.Event)
	require.NoError(t, err)
	require.Equal(t, cef, out)

	out, err = enc.Append([]byte("keep"), "xml", s.Event)
	require.ErrorIs(t, err, format.ErrUnknown)
	require.Equal(t, "keep", string(out))
}

func TestAppendRefusesWhatIsNotAnEvent(t *testing.T) {
	t.Parallel()
	enc, _ := setup(t)
	for _, in := range []string{``, `[]`, `{"id":"x"}`, `{"author_id":"one"}`, `{"event_type":"user_created"}`, `not json`} {
		for _, name := range []string{"ocsf", "cef"} {
			out, err := enc.Append([]byte("keep"), name, []byte(in))
			require.Error(t, err, "%s %q", name, in)
			require.Equal(t, "keep", string(out), "dst is returned unchanged")
		}
	}
}

// TestConcurrentUse runs both encoders from several goroutines (with -race).
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	enc, _ := setup(t)
	ss := samples(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var buf []byte
			for _, s := range ss {
				var err error
				if buf, err = enc.AppendOCSF(buf[:0], s.Event); err != nil {
					t.Error(err)
				}
				if buf, err = enc.AppendCEF(buf[:0], s.Event); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, got, 0o644))
	}
	want, err := os.ReadFile(p)
	require.NoError(t, err, "run go test -update to create it")
	require.Equal(t, string(want), string(got))
}

// goldenSamples are the samples with golden files: one per shape of GitLab's events (REST with
// details only, instance scope, a user change, a git operation with an object custom_message,
// a streamed project event, the log form).
var goldenSamples = map[int]string{
	0:  "rest_project_archived",
	2:  "rest_user_email_change",
	3:  "rest_instance_header_created",
	7:  "streaming_git_ssh_fetch",
	14: "streaming_merge_request_create",
	15: "streaming_project_fork",
	16: "streaming_type_not_in_catalog",
	18: "log_user_login",
}

func TestGolden(t *testing.T) {
	t.Parallel()
	enc, _ := setup(t)
	ss := samples(t)
	for i, name := range goldenSamples {
		ocsf, err := enc.AppendOCSF(nil, ss[i].Event)
		require.NoError(t, err)
		var pretty []byte
		pretty, err = json.MarshalIndent(json.RawMessage(ocsf), "", "  ")
		require.NoError(t, err)
		// The golden file is indented for review; the encoder's output is one line.
		golden(t, name+".ocsf.json", append(pretty, '\n'))
		cef, err := enc.AppendCEF(nil, ss[i].Event)
		require.NoError(t, err)
		golden(t, name+".cef", append(cef, '\n'))
	}
}
