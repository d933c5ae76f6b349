// Package kafka delivers events to an Apache Kafka topic (or a service that speaks Kafka's
// protocol: Confluent Cloud, Redpanda, Azure Event Hubs' Kafka endpoint) with franz-go.
//
// Each event is one record of config.topic: its value is the event in the destination's format
// (config.format: the event JSON exactly as streamed by default, or OCSF JSON, or a CEF line),
// its timestamp the time it was produced (the event's time is its
// created_at; franz-go measures the delivery timeout from the record's timestamp), its headers
// X-Gitlab-Audit-Event-Type (the event type) and Auditstream-Event-Id (the id in decimal). Its
// key is the event's top-level group (KeyOf), so that the events of a group go to one partition
// and keep their order there.
//
// The producer is idempotent and waits for every in-sync replica (acks=all), so a retried
// request does not write a record twice within the sender's producer session. A Send is all or
// nothing: it returns nil once every record is acknowledged; otherwise the engine sends the
// batch again, and the records that were written before are written again (at least once, as
// every destination is).
//
// Every broker address is dialled through env.Dial (the SSRF guard): the bootstrap brokers and
// the ones the cluster advertises. A dial the guard refuses fails the Send at once, permanent,
// with the guard's reason. Other failures are classified from Kafka's error codes: those Kafka
// calls retriable, and a cluster that cannot be reached, are retryable; authentication and
// authorization failures, an unknown topic, a record too large and every error Kafka does not
// call retriable are permanent. Kafka throttles a client by delaying its answers
// (throttle_time_ms), which franz-go honours, so a Send is never "throttled". A failure's
// message never holds the password or token.
package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/netguard"
)

// Record headers.
const (
	EventTypeHeader = "X-Gitlab-Audit-Event-Type"
	EventIDHeader   = "Auditstream-Event-Id"
)

// DeliveryTimeout bounds a Send: the records that are not acknowledged by then fail, retryable
// (Kafka's delivery.timeout.ms).
const DeliveryTimeout = 30 * time.Second

// maxMessage bounds what a failure quotes of an error, in bytes.
const maxMessage = 300

// options are what tests change.
type options struct {
	deliveryTimeout time.Duration
}

var _ destination.Factory = New

// New makes the Sender of a kafka destination. It is a destination.Factory: s.Config is the
// stored config, read with Type's rules; s.SecretToken the SASL password or token. New makes no
// network request: the client connects on the first Send. The errors are *destination.Failure,
// Permanent, and name no secret.
func New(s destination.Settings, env destination.Env) (destination.Sender, error) {
	return Type.Open(s, env)
}

// sender is the Sender of one kafka destination. It is safe for concurrent use.
type sender struct {
	client  *kgo.Client
	secrets []string
	enc     destination.Encoding

	// blocked is the last dial the SSRF guard refused; a Send in flight ends at once then.
	blocked atomic.Pointer[netguard.BlockedError]
	// lastDial is the last dial error of another kind, for the message of a timeout.
	lastDial atomic.Pointer[string]

	mu      sync.Mutex
	waiting map[*context.CancelFunc]struct{} // the Sends in flight
}

func newSender(cfg Config, s destination.Settings, env destination.Env, opt options) (destination.Sender, error) {
	if cfg.SASLMechanism != "" && s.SecretToken == "" {
		return nil, destination.SettingsFailure("the %s mechanism needs the SASL password or token as the destination's secret token, and it is empty", cfg.SASLMechanism)
	}
	snd := &sender{waiting: map[*context.CancelFunc]struct{}{}, enc: s.Format}
	snd.secrets = destination.RedactList(4, s.SecretToken)

	dial := env.Dial
	if dial == nil {
		dial = netguard.Policy{}.DialContext
	}
	var tlsConf *tls.Config
	if cfg.TLS {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CACertificate != "" {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM([]byte(cfg.CACertificate)) {
				return nil, destination.SettingsFailure("config.caCertificate holds no certificate")
			}
			tlsConf.RootCAs = pool
		}
	}
	if opt.deliveryTimeout == 0 {
		opt.deliveryTimeout = DeliveryTimeout
	}
	kopts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.ClientID("auditstream"),
		kgo.Dialer(snd.dialer(dial, tlsConf)),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(opt.deliveryTimeout),
		kgo.ProducerLinger(0),
		kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.UnknownTopicRetries(2),
	}
	if m := mechanism(cfg, s.SecretToken); m != nil {
		kopts = append(kopts, kgo.SASL(m))
	}
	client, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, destination.SettingsFailure("the Kafka client cannot be made: %s", destination.Scrub(err.Error(), maxMessage, snd.secrets...))
	}
	snd.client = client
	return snd, nil
}

// mechanism returns the SASL mechanism of cfg with the secret, or nil without SASL.
func mechanism(cfg Config, secret string) sasl.Mechanism {
	switch cfg.SASLMechanism {
	case MechanismPlain:
		return plain.Auth{User: cfg.Username, Pass: secret}.AsMechanism()
	case MechanismSCRAMSHA256:
		return scram.Auth{User: cfg.Username, Pass: secret}.AsSha256Mechanism()
	case MechanismSCRAMSHA512:
		return scram.Auth{User: cfg.Username, Pass: secret}.AsSha512Mechanism()
	case MechanismOAuthBearer:
		return oauth.Auth{Token: secret}.AsMechanism()
	}
	return nil
}

// dialer dials every broker through dial (the SSRF guard), then TLS when tlsConf is set. A
// refused dial ends the Sends in flight.
func (s *sender) dialer(dial func(ctx context.Context, network, address string) (net.Conn, error), tlsConf *tls.Config) func(ctx context.Context, network, host string) (net.Conn, error) {
	return func(ctx context.Context, network, host string) (net.Conn, error) {
		conn, err := dial(ctx, network, host)
		if err != nil {
			var be *netguard.BlockedError
			if errors.As(err, &be) {
				s.blocked.Store(be)
				s.cancelWaiting()
			} else {
				msg := destination.Scrub(err.Error(), maxMessage, s.secrets...)
				s.lastDial.Store(&msg)
			}
			return nil, err
		}
		s.blocked.Store(nil)
		if tlsConf == nil {
			return conn, nil
		}
		c := tlsConf.Clone()
		if h, _, err := net.SplitHostPort(host); err == nil {
			c.ServerName = h
		}
		tc := tls.Client(conn, c)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			msg := "TLS handshake with " + host + ": " + destination.Scrub(err.Error(), maxMessage, s.secrets...)
			s.lastDial.Store(&msg)
			return nil, err
		}
		return tc, nil
	}
}

func (s *sender) cancelWaiting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.waiting {
		(*c)()
	}
}

// KeyOf returns the record key of an event: the path of its top-level group (the first segment
// of entity_path) for the events of a group or a project, so that a group's events share a
// partition; for other events (a user, the instance) its entity_type and entity_id
// ("User/42"). The key follows the path, so the events of a group renamed at the top go to the
// partition of the new name.
func KeyOf(eventJSON []byte) []byte {
	var e struct {
		EntityType string          `json:"entity_type"`
		EntityID   json.RawMessage `json:"entity_id"`
		EntityPath string          `json:"entity_path"`
	}
	_ = json.Unmarshal(eventJSON, &e) // the log holds valid events; a broken one gets a key of what was read
	switch e.EntityType {
	case "Group", "Project", "Namespaces::ProjectNamespace", "Namespaces::UserNamespace":
		if top, _, _ := strings.Cut(e.EntityPath, "/"); top != "" {
			return []byte(top)
		}
	}
	return []byte(e.EntityType + "/" + strings.Trim(string(e.EntityID), `"`))
}

// Send produces one record per event and waits until every one is acknowledged.
func (s *sender) Send(ctx context.Context, batch []destination.Event) error {
	if len(batch) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	records := make([]*kgo.Record, len(batch))
	for i, e := range batch {
		value, err := s.enc.Payload(e)
		if err != nil {
			return err
		}
		records[i] = &kgo.Record{
			Key:   KeyOf(e.JSON),
			Value: value,
			Headers: []kgo.RecordHeader{
				{Key: EventTypeHeader, Value: []byte(e.Type)},
				{Key: EventIDHeader, Value: strconv.AppendInt(nil, e.ID, 10)},
			},
		}
	}
	pctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	s.waiting[&cancel] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiting, &cancel)
		s.mu.Unlock()
		cancel()
	}()
	if be := s.blocked.Load(); be != nil {
		cancel() // the last dial was refused: fail now rather than after the delivery timeout
	}
	err := s.client.ProduceSync(pctx, records...).FirstErr()
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if be := s.blocked.Load(); be != nil {
		return &destination.Failure{Kind: destination.Permanent, Message: be.Error(), Err: be}
	}
	return s.classify(err)
}

// classify makes a failure of a produce error.
func (s *sender) classify(err error) error {
	msg := destination.Scrub(err.Error(), maxMessage, s.secrets...)
	cause := errors.New(msg) // franz-go's errors hold no secret, but the message is what is kept
	var ke *kerr.Error
	switch {
	case errors.As(err, &ke) && permanent(ke):
		return &destination.Failure{Kind: destination.Permanent, Message: msg, Err: cause}
	case errors.Is(err, kgo.ErrRecordTimeout), errors.Is(err, context.Canceled):
		if last := s.lastDial.Load(); last != nil && !errors.As(err, &ke) {
			msg = "no broker could be reached within the delivery timeout: " + *last
		}
	}
	return &destination.Failure{Kind: destination.Retryable, Message: msg, Err: cause}
}

// permanent reports whether sending the same records again cannot succeed without a change of
// config, credentials or ACLs.
func permanent(e *kerr.Error) bool {
	switch e {
	case kerr.SaslAuthenticationFailed, kerr.UnsupportedSaslMechanism, kerr.IllegalSaslState,
		kerr.TopicAuthorizationFailed, kerr.ClusterAuthorizationFailed, kerr.TransactionalIDAuthorizationFailed,
		kerr.UnknownTopicOrPartition, kerr.InvalidTopicException, kerr.MessageTooLarge, kerr.RecordListTooLarge,
		kerr.InvalidRecord, kerr.CorruptMessage, kerr.PolicyViolation, kerr.InvalidRequiredAcks, kerr.UnsupportedVersion,
		kerr.UnsupportedForMessageFormat:
		return true
	}
	return !e.Retriable
}

// Close flushes nothing (a Send waits for its records) and closes the connections.
func (s *sender) Close() error {
	s.client.Close()
	return nil
}
