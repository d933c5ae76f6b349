package syslog

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/destinationtest"
)

var registry = destination.NewRegistry(Type)

// open makes a sender of the config, read with the type's rules.
func open(t *testing.T, cfg map[string]any, env destination.Env) *sender {
	t.Helper()
	raw, err := json.Marshal(cfg)
	require.NoError(t, err)
	c, err := registry.ParseConfig(Category, raw)
	require.NoError(t, err)
	snd, err := New(destination.Settings{Category: Category, Config: c.JSON}, env)
	require.NoError(t, err)
	t.Cleanup(func() { _ = snd.Close() })
	return snd.(*sender)
}

// TestConformance runs the suite every category runs against rsyslog over TCP. Syslog has no
// answer, so there is no refusal to classify.
func TestConformance(t *testing.T) {
	destinationtest.Run(t, destinationtest.Harness{Batches: true, Start: func(t *testing.T) *destinationtest.Server {
		r := startRsyslog(t, false)
		var mu sync.Mutex
		var senders []*sender
		return &destinationtest.Server{
			Open: func(t *testing.T, env destination.Env, batched bool) destination.Sender {
				cfg := map[string]any{"address": r.addr, "hostname": "gitlab.example.com"}
				if batched {
					cfg["batch"] = map[string]any{"maxEvents": 100}
				}
				snd := open(t, cfg, env)
				mu.Lock()
				senders = append(senders, snd)
				mu.Unlock()
				return snd
			},
			Delivered: func(t *testing.T) []int64 {
				mu.Lock()
				defer mu.Unlock()
				for _, s := range senders {
					r.flush(t, s)
				}
				return ids(t, r.events(t))
			},
			Stop: r.stop,
		}
	}})
}

// TestMessages: each event is one RFC 5424 message as rsyslog parses it: PRI from the facility,
// the event's time, host, app name, the event type as MSGID, the event JSON as MSG.
func TestMessages(t *testing.T) {
	r := startRsyslog(t, false)
	snd := open(t, map[string]any{"address": r.addr, "hostname": "gitlab.example.com", "appName": "gitlab-prod", "facility": 4}, destinationtest.Allowing())
	batch := []destination.Event{destinationtest.Event(1, "group_created"), destinationtest.Event(2, "a_very_long_event_type_that_is_longer_than_32")}
	require.NoError(t, snd.Send(context.Background(), batch))
	r.flush(t, snd)
	got := r.events(t)
	require.Equal(t, []line{
		{MsgID: "group_created", AppName: "gitlab-prod", Hostname: "gitlab.example.com", Pri: "38", Time: "2026-05-01T12:00:00.001Z", Msg: string(batch[0].JSON)},
		{MsgID: "a_very_long_event_type_that_is_l", AppName: "gitlab-prod", Hostname: "gitlab.example.com", Pri: "38", Time: "2026-05-01T12:00:00.002Z", Msg: string(batch[1].JSON)},
	}, got)
}

// TestReconnectsAfterTheCollectorRestarts: a kept connection the collector closed is not
// written to; the next Send connects again.
func TestReconnectsAfterTheCollectorRestarts(t *testing.T) {
	r := startRsyslog(t, false)
	snd := open(t, map[string]any{"address": r.addr}, destinationtest.Allowing())
	require.NoError(t, snd.Send(context.Background(), []destination.Event{destinationtest.Event(1, "group_created")}))
	r.flush(t, snd)
	r.stop()
	f := destination.Classify(snd.Send(context.Background(), []destination.Event{destinationtest.Event(2, "group_created")}))
	require.Equal(t, destination.Retryable, f.Kind, f.Error())
	require.Contains(t, f.Message, "connecting to "+r.addr)
}

// TestTLS delivers over TLS (RFC 5425) to rsyslog's gtls listener whose certificate a private CA
// signed, given as caCertificate; without it the handshake fails, retryable.
func TestTLS(t *testing.T) {
	r := startRsyslog(t, true)
	snd := open(t, map[string]any{"address": r.addr, "tls": true, "caCertificate": r.caPEM}, destinationtest.Allowing())
	require.NoError(t, snd.Send(context.Background(), []destination.Event{destinationtest.Event(7, "group_created")}))
	r.flush(t, snd)
	require.Equal(t, []int64{7}, ids(t, r.events(t)))

	untrusted := open(t, map[string]any{"address": r.addr, "tls": true}, destinationtest.Allowing())
	f := destination.Classify(untrusted.Send(context.Background(), []destination.Event{destinationtest.Event(8, "group_created")}))
	require.Equal(t, destination.Retryable, f.Kind, f.Error())
	require.Contains(t, f.Message, "TLS handshake")
}

func TestParseConfig(t *testing.T) {
	for _, c := range []struct{ in, want, problem string }{
		{`{"address":"siem.example.com:6514","tls":true}`, `{"address":"siem.example.com:6514","appName":"gitlab","facility":13,"tls":true}`, ""},
		{`{"address":"[::1]:514","hostname":"gl","facility":0}`, `{"address":"[::1]:514","appName":"gitlab","facility":0,"hostname":"gl","tls":false}`, ""},
		{`{"address":"siem.example.com"}`, "", "config.address: must be a host:port with a port from 1 to 65535"},
		{`{"address":"a:1","facility":24}`, "", "config.facility: must be from 0 to 23"},
		{`{"address":"a:1","hostname":"two words"}`, "", "config.hostname: may only contain visible ASCII characters, without spaces (RFC 5424)"},
		{`{"address":"a:1","caCertificate":"x"}`, "", "config.caCertificate: is only used with tls: true"},
	} {
		cfg, err := registry.ParseConfig(Category, []byte(c.in))
		if c.problem != "" {
			require.EqualError(t, err, c.problem, c.in)
			continue
		}
		require.NoError(t, err, c.in)
		require.Equal(t, c.want, string(cfg.JSON), c.in)
		again, err := registry.ParseConfig(Category, cfg.JSON)
		require.NoError(t, err)
		require.Equal(t, cfg.JSON, again.JSON)
	}
	require.NoError(t, registry.ValidateSecret(Category, ""))
	require.Error(t, registry.ValidateSecret(Category, "anything"))
}

// TestFormatCEF: with format cef, MSG is the event's CEF line, as ArcSight's and Microsoft
// Sentinel's CEF collectors read it; the header (MSGID the event type) stays.
func TestFormatCEF(t *testing.T) {
	r := startRsyslog(t, false)
	snd := open(t, map[string]any{"address": r.addr, "hostname": "gitlab.example.com", "format": "cef"}, destinationtest.Allowing())
	batch := []destination.Event{destinationtest.Event(1, "group_created"), destinationtest.Event(2, "user_blocked")}
	require.NoError(t, snd.Send(context.Background(), batch))
	r.flush(t, snd)
	got := r.events(t)
	require.Len(t, got, 2)
	for i, e := range batch {
		require.Equal(t, e.Type, got[i].MsgID)
		require.Equal(t, string(destinationtest.Encoded(t, "cef", e)), got[i].Msg)
	}
}
