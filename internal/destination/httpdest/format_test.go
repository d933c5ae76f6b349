package httpdest_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
)

// timeNow is the real clock, for signatures that standardwebhooks verifies (within 5 minutes).
var timeNow = time.Now

// withFormat is s with config.format set to name.
func withFormat(s destination.Settings, name string) destination.Settings {
	s.Config = append(append(s.Config[:len(s.Config)-1:len(s.Config)-1], `,"format":`+strconv.Quote(name)...), '}')
	return s
}

// TestFormatOCSF: an ocsf destination gets each event as one OCSF object, or a batch as a JSON
// array of them, as application/json; GitLab's headers stay and the signature covers the
// bytes sent.
func TestFormatOCSF(t *testing.T) {
	rec := newRecorder(t, nil)
	wh, err := standardwebhooks.NewWebhook(signingSecret)
	require.NoError(t, err)
	ocsf := func(t *testing.T, raw []byte, e destination.Event) {
		t.Helper()
		var o struct {
			ClassUID int `json:"class_uid"`
			Time     int64
			Metadata struct {
				UID       string `json:"uid"`
				EventCode string `json:"event_code"`
			}
		}
		require.NoError(t, json.Unmarshal(raw, &o), "%s", raw)
		require.Equal(t, 3004, o.ClassUID, "%s is Entity Management", e.Type)
		require.Equal(t, e.CreatedAt.UnixMilli(), o.Time)
		require.Equal(t, strconv.FormatInt(e.ID, 10), o.Metadata.UID)
		require.Equal(t, e.Type, o.Metadata.EventCode)
	}

	snd := newSender(t, withFormat(settings(rec.URL, false), "ocsf"), destination.Env{})
	e := event(40, eventTypeOne)
	require.NoError(t, snd.Send(context.Background(), []destination.Event{e}))
	r := rec.last(t)
	ocsf(t, r.Body, e)
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	require.Equal(t, eventTypeOne, r.Header.Get("X-Gitlab-Audit-Event-Type"))
	require.Equal(t, token, r.Header.Get(destination.StreamingTokenHeader))
	require.Equal(t, "40", r.Header.Get("Webhook-Id"))
	require.Equal(t, sign(signingSecret, "40", fixedNow.Unix(), r.Body), r.Header.Get("Webhook-Signature"))

	snd = newSender(t, withFormat(settings(rec.URL, true), "ocsf"), destination.Env{Now: timeNow})
	events := []destination.Event{event(41, eventTypeOne), event(42, eventTypeOne), event(43, eventTypeOne)}
	require.NoError(t, snd.Send(context.Background(), events))
	r = rec.last(t)
	var got []json.RawMessage
	require.NoError(t, json.Unmarshal(r.Body, &got))
	require.Len(t, got, len(events))
	for i, e := range events {
		ocsf(t, got[i], e)
	}
	require.Equal(t, strconv.Itoa(len(r.Body)), r.Header.Get("Content-Length"))
	require.Equal(t, "41-43", r.Header.Get("Webhook-Id"))
	require.NoError(t, wh.Verify(r.Body, r.Header))
}

// TestFormatCEF: a cef destination gets one CEF line, or a batch as the lines joined by "\n",
// as text/plain (unless a custom header says otherwise), signed over the bytes sent.
func TestFormatCEF(t *testing.T) {
	rec := newRecorder(t, nil)
	wh, err := standardwebhooks.NewWebhook(signingSecret)
	require.NoError(t, err)
	line := func(t *testing.T, l string, e destination.Event) {
		t.Helper()
		require.True(t, strings.HasPrefix(l, "CEF:0|auditstream|auditstream|"), l)
		require.Contains(t, l, "|"+e.Type+"|")
		require.Contains(t, l, " externalId="+strconv.FormatInt(e.ID, 10)+" ")
		require.Contains(t, l, "rt="+strconv.FormatInt(e.CreatedAt.UnixMilli(), 10))
	}

	snd := newSender(t, withFormat(settings(rec.URL, false), "cef"), destination.Env{Now: timeNow})
	e := event(50, eventTypeTwo)
	require.NoError(t, snd.Send(context.Background(), []destination.Event{e}))
	r := rec.last(t)
	line(t, string(r.Body), e)
	require.NotContains(t, string(r.Body), "\n")
	require.Equal(t, "text/plain; charset=utf-8", r.Header.Get("Content-Type"))
	require.Equal(t, eventTypeTwo, r.Header.Get("X-Gitlab-Audit-Event-Type"))
	require.NoError(t, wh.Verify(r.Body, r.Header))

	events := []destination.Event{event(51, eventTypeOne), event(52, eventTypeTwo)}
	require.NoError(t, snd.Send(context.Background(), events))
	r = rec.last(t)
	lines := strings.Split(string(r.Body), "\n")
	require.Len(t, lines, 2, "no trailing newline")
	for i, e := range events {
		line(t, lines[i], e)
	}
	require.Equal(t, strconv.Itoa(len(r.Body)), r.Header.Get("Content-Length"))
	require.Empty(t, r.Header.Values("X-Gitlab-Audit-Event-Type"))
	require.NoError(t, wh.Verify(r.Body, r.Header))

	// A custom Content-Type still wins.
	s := withFormat(settings(rec.URL, false), "cef")
	s.Headers = append(s.Headers, destination.Header{Name: "Content-Type", Value: "application/x-cef", Active: true})
	snd = newSender(t, s, destination.Env{Now: timeNow})
	require.NoError(t, snd.Send(context.Background(), []destination.Event{e}))
	require.Equal(t, "application/x-cef", rec.last(t).Header.Get("Content-Type"))
}

// TestFormatUnreadableEventIsPermanent: an event that cannot be written in the format goes to
// the dead letters at once, without a request.
func TestFormatUnreadableEventIsPermanent(t *testing.T) {
	rec := newRecorder(t, nil)
	snd := newSender(t, withFormat(settings(rec.URL, false), "ocsf"), destination.Env{})
	err := snd.Send(context.Background(), []destination.Event{{ID: 3, Type: eventTypeOne, JSON: []byte(`{"id":3}`)}})
	require.Equal(t, destination.Permanent, failure(t, err).Kind)
	require.Empty(t, rec.requests())
}
