// Package destinationtest is the conformance suite every destination category runs from its own
// tests (Run), against a real server of its protocol that the category's tests start: the SSRF
// guard on every address a sender dials, secrets never in errors, the classification of
// failures (permanent, throttled, retryable), batches delivered whole and in order, idempotent
// redelivery where the protocol allows it (object keys), test events, cancellation, and
// concurrent sends.
package destinationtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/netguard"
)

// TestEventType is the event type of the engine's test events (delivery.TestEventType): it is
// in no catalog, and a destination delivers it like any other.
const TestEventType = "audit_events_streaming_test_event"

// Server is a running server of a category's protocol, started for one test.
type Server struct {
	// Open makes a sender delivering to the server through env (its HTTP client, its dialer);
	// batched is the config's batch. The test closes the sender.
	Open func(t *testing.T, env destination.Env, batched bool) destination.Sender
	// Delivered returns the ids of the events the server has, in the order it received them.
	Delivered func(t *testing.T) []int64
	// Secrets are the secret values the destination's settings hold: none may appear in an
	// error.
	Secrets []string
	// Stop stops the server, so that the next send finds nothing listening. Nil: the category
	// has no such case (then Run skips it).
	Stop func()
	// Refuse makes the server answer the next requests with a failure that the category must
	// classify as kind, and reports whether the protocol has such an answer (Kafka, for one,
	// throttles by delaying its answers, not by refusing). Nil: the test server cannot be told
	// to refuse (then Run skips these cases).
	Refuse func(kind destination.FailureKind) bool
}

// Harness is what a category gives the suite.
type Harness struct {
	// Start starts a new server for one test. The server stops when the test ends.
	Start func(t *testing.T) *Server
	// Batches: the category takes several events per Send (every category does today).
	Batches bool
	// Idempotent: the protocol makes a redelivery of the same events land on what the first
	// delivery wrote (an object store's key), so the server has each event once.
	Idempotent bool
}

// Allowing is the Env of a service whose operator allows private destinations: the servers of
// the tests listen on loopback.
func Allowing() destination.Env {
	p := netguard.Policy{AllowPrivate: true}
	return destination.Env{HTTPClient: p.HTTPClient(), Dial: p.DialContext}
}

// Event returns event id as the log streams it: GitLab's JSON, with its id.
func Event(id int64, eventType string) destination.Event {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(id%1_000_000) * time.Millisecond)
	body := fmt.Appendf(nil, `{"id":%d,"author_id":1,"author_name":"Administrator","entity_id":22,"entity_type":"Group","entity_path":"acme","details":{"event_name":%q},"target_id":22,"target_type":"Group","created_at":%q,"event_type":%q}`,
		id, eventType, at.Format("2006-01-02T15:04:05.000Z"), eventType)
	return destination.Event{ID: id, Type: eventType, CreatedAt: at, JSON: body}
}

// Encoded returns e as a destination of output format name delivers it when its Env has no
// Encoder (as the tests' Envs have not: the embedded catalog), for the tests of each category
// that it delivers the encoded form. It checks the form on the way: an OCSF event is a JSON
// object with the event's time and id, a CEF event one line with its type.
func Encoded(t testing.TB, name string, e destination.Event) []byte {
	t.Helper()
	b, err := destination.NewEncoding(name, nil).Payload(e)
	require.NoError(t, err)
	switch name {
	case "ocsf":
		var o struct {
			ClassUID int   `json:"class_uid"`
			Time     int64 `json:"time"`
			Metadata struct {
				UID string `json:"uid"`
			} `json:"metadata"`
		}
		require.NoError(t, json.Unmarshal(b, &o), "%s", b)
		require.NotZero(t, o.ClassUID)
		require.Equal(t, e.CreatedAt.UnixMilli(), o.Time)
		require.Equal(t, strconv.FormatInt(e.ID, 10), o.Metadata.UID)
	case "cef":
		require.True(t, bytes.HasPrefix(b, []byte("CEF:0|")), "%s", b)
		require.NotContains(t, string(b), "\n")
		require.Contains(t, string(b), "|"+e.Type+"|")
	}
	return b
}

// Run runs the suite as subtests of t.
func Run(t *testing.T, h Harness) {
	t.Run("DeliversAnEvent", func(t *testing.T) {
		s := h.Start(t)
		snd := open(t, s, Allowing(), false)
		require.NoError(t, snd.Send(context.Background(), []destination.Event{Event(1, "group_created")}))
		require.Equal(t, []int64{1}, s.Delivered(t))
	})
	t.Run("DeliversATestEvent", func(t *testing.T) {
		s := h.Start(t)
		snd := open(t, s, Allowing(), false)
		const id = 1<<52 + 12345 // the engine's test events have ids the log never reaches
		require.NoError(t, snd.Send(context.Background(), []destination.Event{Event(id, TestEventType)}))
		require.Equal(t, []int64{id}, s.Delivered(t))
	})
	if h.Batches {
		t.Run("DeliversABatchWholeAndInOrder", func(t *testing.T) {
			s := h.Start(t)
			snd := open(t, s, Allowing(), true)
			var batch []destination.Event
			var ids []int64
			for i := int64(10); i < 17; i++ {
				batch = append(batch, Event(i, "user_blocked"))
				ids = append(ids, i)
			}
			require.NoError(t, snd.Send(context.Background(), batch))
			require.Equal(t, ids, s.Delivered(t))
		})
	}
	if h.Idempotent {
		t.Run("RedeliveryLandsOnTheFirstDelivery", func(t *testing.T) {
			s := h.Start(t)
			for _, batched := range []bool{false, true} {
				snd := open(t, s, Allowing(), batched)
				for range 2 {
					require.NoError(t, snd.Send(context.Background(), []destination.Event{Event(41, "group_created"), Event(42, "group_created")}))
				}
			}
			got := s.Delivered(t)
			slices.Sort(got)
			require.Equal(t, []int64{41, 41, 42, 42}, got, "once per delivery mode (per event and batched), not once per send")
		})
	}
	t.Run("ConcurrentSends", func(t *testing.T) {
		s := h.Start(t)
		snd := open(t, s, Allowing(), false)
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() {
				errs[i] = snd.Send(context.Background(), []destination.Event{Event(int64(100+i), "group_created")})
			})
		}
		wg.Wait()
		require.NoError(t, errors.Join(errs...))
		got := s.Delivered(t)
		slices.Sort(got)
		require.Equal(t, []int64{100, 101, 102, 103, 104, 105, 106, 107}, got)
	})
	t.Run("CanceledContextDeliversNothing", func(t *testing.T) {
		s := h.Start(t)
		snd := open(t, s, Allowing(), false)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := snd.Send(ctx, []destination.Event{Event(1, "group_created")})
		require.Error(t, err)
		noSecrets(t, err, s.Secrets)
		require.Empty(t, s.Delivered(t))
	})
	for _, tc := range []struct {
		name string
		env  destination.Env
	}{
		{"SSRFGuard", destination.Env{HTTPClient: netguard.Policy{}.HTTPClient(), Dial: netguard.Policy{}.DialContext}},
		{"SSRFGuardWithoutEnv", destination.Env{}}, // a sender without a client or dialer uses the default guard
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := h.Start(t)
			for _, batched := range []bool{false, true} {
				snd := open(t, s, tc.env, batched)
				err := snd.Send(context.Background(), []destination.Event{Event(1, "group_created")})
				f := failure(t, err, s.Secrets)
				require.Equal(t, destination.Permanent, f.Kind, f.Error())
				require.ErrorIs(t, err, netguard.ErrBlocked)
				require.Contains(t, f.Message, "is loopback: destinations may not reach it")
			}
			require.Empty(t, s.Delivered(t), "nothing reached the server")
		})
	}
	t.Run("UnreachableIsRetryable", func(t *testing.T) {
		s := h.Start(t)
		if s.Stop == nil {
			t.Skip("the category's server cannot be stopped")
		}
		snd := open(t, s, Allowing(), false)
		s.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f := failure(t, snd.Send(ctx, []destination.Event{Event(1, "group_created")}), s.Secrets)
		require.Equal(t, destination.Retryable, f.Kind, f.Error())
	})
	for _, kind := range []destination.FailureKind{destination.Permanent, destination.Throttled, destination.Retryable} {
		t.Run("Classifies"+strings.ToUpper(kind.String()[:1])+kind.String()[1:], func(t *testing.T) {
			s := h.Start(t)
			if s.Refuse == nil {
				t.Skip("the protocol has no way to make the server refuse")
			}
			snd := open(t, s, Allowing(), false)
			if !s.Refuse(kind) {
				t.Skip("the protocol has no " + kind.String() + " answer")
			}
			f := failure(t, snd.Send(context.Background(), []destination.Event{Event(1, "group_created")}), s.Secrets)
			require.Equal(t, kind, f.Kind, f.Error())
		})
	}
}

func open(t *testing.T, s *Server, env destination.Env, batched bool) destination.Sender {
	t.Helper()
	snd := s.Open(t, env, batched)
	t.Cleanup(func() { _ = snd.Close() })
	return snd
}

// failure returns err as a *destination.Failure after checking that neither it nor anything it
// wraps shows a secret.
func failure(t *testing.T, err error, secrets []string) *destination.Failure {
	t.Helper()
	require.Error(t, err)
	noSecrets(t, err, secrets)
	var f *destination.Failure
	require.ErrorAs(t, err, &f)
	return f
}

// noSecrets checks every text an error shows: its message, each error it wraps and their %+v.
func noSecrets(t *testing.T, err error, secrets []string) {
	t.Helper()
	var texts []string
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		texts = append(texts, e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e))
		switch x := e.(type) {
		case interface{ Unwrap() []error }:
			for _, c := range x.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(x.Unwrap())
		}
	}
	walk(err)
	var f *destination.Failure
	if errors.As(err, &f) {
		texts = append(texts, f.Message)
	}
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		for _, text := range texts {
			require.NotContains(t, text, sec, "an error shows a secret")
		}
	}
}
