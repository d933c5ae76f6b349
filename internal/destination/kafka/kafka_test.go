package kafka

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/destinationtest"
)

const (
	topic      = "gitlab-audit"
	partitions = 4
	user       = "auditstream"
	password   = "kafka-S3cr3t-password"
	// testTimeout is the delivery timeout of the tests' senders: what waits for a cluster that
	// does not answer.
	testTimeout = 3 * time.Second
)

// cluster is a kfake cluster of 3 brokers with the topic, that takes SASL users.
type cluster struct {
	*kfake.Cluster
	// auth is how its clients authenticate (the consumer of tests too).
	mechanism, user, pass string
}

func startCluster(t *testing.T, opts ...kfake.Opt) *cluster {
	t.Helper()
	c := &cluster{mechanism: MechanismSCRAMSHA256, user: user, pass: password}
	all := append([]kfake.Opt{kfake.NumBrokers(3), kfake.SeedTopics(partitions, topic), kfake.EnableSASL(),
		kfake.Superuser(MechanismSCRAMSHA256, user, password)}, opts...)
	kc, err := kfake.NewCluster(all...)
	require.NoError(t, err)
	t.Cleanup(kc.Close)
	c.Cluster = kc
	return c
}

// config is the stored config of a destination delivering to c.
func (c *cluster) config(t *testing.T, extra map[string]any) []byte {
	t.Helper()
	cfg := map[string]any{"brokers": strings.Join(c.ListenAddrs(), ","), "topic": topic, "saslMechanism": c.mechanism, "username": c.user}
	if c.mechanism == "" || c.mechanism == MechanismOAuthBearer {
		delete(cfg, "username")
	}
	if c.mechanism == "" {
		delete(cfg, "saslMechanism")
	}
	for k, v := range extra {
		cfg[k] = v
	}
	raw, err := json.Marshal(cfg)
	require.NoError(t, err)
	parsed, err := destination.NewRegistry(Type).ParseConfig(Category, raw)
	require.NoError(t, err)
	return parsed.JSON
}

// open makes a sender through the type's own decoding, with the tests' delivery timeout.
func open(t *testing.T, config []byte, secret string, env destination.Env) destination.Sender {
	t.Helper()
	cfg, s, err := Type.Decode(destination.Settings{Category: Category, Config: config, SecretToken: secret}, env)
	require.NoError(t, err)
	snd, err := newSender(cfg.(Config), s, env, options{deliveryTimeout: testTimeout})
	require.NoError(t, err)
	t.Cleanup(func() { _ = snd.Close() })
	return snd
}

// record is a record read back.
type record struct {
	Partition int32
	Key       string
	ID        int64
	Type      string
	Headers   map[string]string
	Timestamp time.Time
	Value     []byte
}

// records reads back every record of the topic: it asks the cluster for the end offsets, then
// consumes until it has them all.
func (c *cluster) records(t *testing.T) []record {
	t.Helper()
	var m sasl.Mechanism
	switch c.mechanism {
	case MechanismSCRAMSHA256:
		m = scram.Auth{User: c.user, Pass: c.pass}.AsSha256Mechanism()
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	if m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	cl, err := kgo.NewClient(opts...)
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := range int32(partitions) {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -1 // the end
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	shards := cl.RequestSharded(ctx, req)
	var want int64
	for _, sh := range shards {
		require.NoError(t, sh.Err)
		for _, tp := range sh.Resp.(*kmsg.ListOffsetsResponse).Topics {
			for _, p := range tp.Partitions {
				require.Zero(t, p.ErrorCode)
				want += p.Offset
			}
		}
	}
	var out []record
	for int64(len(out)) < want {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "read %d of %d records", len(out), want)
		fs.EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			id, err := strconv.ParseInt(h[EventIDHeader], 10, 64)
			require.NoError(t, err)
			// GitLab's JSON has the id too (OCSF and CEF have it elsewhere: format's tests).
			var ev struct{ ID *int64 }
			if json.Unmarshal(r.Value, &ev) == nil && ev.ID != nil {
				require.Equal(t, id, *ev.ID)
			}
			out = append(out, record{Partition: r.Partition, Key: string(r.Key), ID: id, Type: h[EventTypeHeader], Headers: h, Timestamp: r.Timestamp, Value: r.Value})
		})
	}
	return out
}

func (c *cluster) delivered(t *testing.T) []int64 {
	var ids []int64
	for _, r := range c.records(t) {
		ids = append(ids, r.ID)
	}
	return ids
}

// refuse makes the cluster answer every produce request with code for every partition.
func (c *cluster) refuse(code int16) {
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
}

// TestConformance runs the suite every category runs against a kfake cluster with SASL
// SCRAM-SHA-256.
func TestConformance(t *testing.T) {
	destinationtest.Run(t, destinationtest.Harness{Batches: true, Start: func(t *testing.T) *destinationtest.Server {
		c := startCluster(t)
		return &destinationtest.Server{
			Open: func(t *testing.T, env destination.Env, batched bool) destination.Sender {
				extra := map[string]any{}
				if batched {
					extra["batch"] = map[string]any{"maxEvents": 100}
				}
				return open(t, c.config(t, extra), password, env)
			},
			Delivered: c.delivered,
			Secrets:   []string{password},
			Stop:      c.Close,
			Refuse: func(kind destination.FailureKind) bool {
				switch kind {
				case destination.Permanent:
					c.refuse(29) // TOPIC_AUTHORIZATION_FAILED
				case destination.Retryable:
					c.refuse(19) // NOT_ENOUGH_REPLICAS
				default:
					return false // Kafka throttles by delaying its answers (throttle_time_ms), which franz-go honours
				}
				return true
			},
		}
	}})
}

// groupEvent is an event of entity type and path, as GitLab writes them.
func groupEvent(id int64, entityType, path string) destination.Event {
	e := destinationtest.Event(id, "group_created")
	e.JSON = []byte(strings.Replace(strings.Replace(string(e.JSON), `"entity_type":"Group"`, `"entity_type":"`+entityType+`"`, 1),
		`"entity_path":"acme"`, `"entity_path":"`+path+`"`, 1))
	return e
}

// TestRecordsKeyedByTopLevelGroup: a group's events, and those of its subgroups and projects,
// share a key and so a partition, in order; the record carries the event as streamed.
func TestRecordsKeyedByTopLevelGroup(t *testing.T) {
	c := startCluster(t)
	snd := open(t, c.config(t, map[string]any{"batch": map[string]any{"maxEvents": 100}}), password, destinationtest.Allowing())
	var batch []destination.Event
	for i := int64(1); i <= 30; i++ {
		switch i % 3 {
		case 0:
			batch = append(batch, groupEvent(i, "Group", "acme/platform"))
		case 1:
			batch = append(batch, groupEvent(i, "Project", "acme/platform/api"))
		default:
			batch = append(batch, groupEvent(i, "Group", "other-group"))
		}
	}
	batch = append(batch, groupEvent(31, "User", "jane"))
	require.NoError(t, snd.Send(context.Background(), batch))

	recs := c.records(t)
	require.Len(t, recs, 31)
	parts := map[string]int32{}
	var acme []int64
	for _, r := range recs {
		if p, ok := parts[r.Key]; ok {
			require.Equal(t, p, r.Partition, "key %s in two partitions", r.Key)
		}
		parts[r.Key] = r.Partition
		if r.Key == "acme" {
			acme = append(acme, r.ID)
		}
		require.Equal(t, "group_created", r.Type)
		require.Equal(t, r.ID, mustInt(t, r.Headers[EventIDHeader]))
	}
	require.Equal(t, map[string]bool{"acme": true, "other-group": true, "User/22": true}, keys(parts))
	require.Len(t, acme, 20)
	require.IsIncreasing(t, acme, "a group's events stay in order")
}

func mustInt(t *testing.T, s string) int64 {
	var n int64
	require.NoError(t, json.Unmarshal([]byte(s), &n))
	return n
}

func keys[V any](m map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

func TestKeyOf(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{"entity_type":"Group","entity_id":7,"entity_path":"acme"}`, "acme"},
		{`{"entity_type":"Project","entity_id":8,"entity_path":"acme/sub/app"}`, "acme"},
		{`{"entity_type":"User","entity_id":22,"entity_path":"jane"}`, "User/22"},
		{`{"entity_type":"Gitlab::Audit::InstanceScope","entity_id":1,"entity_path":"gitlab_instance"}`, "Gitlab::Audit::InstanceScope/1"},
		{`not json`, "/"},
	} {
		require.Equal(t, c.want, string(KeyOf([]byte(c.json))), c.json)
	}
}

// TestSASLMechanisms delivers with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, and refuses a wrong
// password as permanent without showing it.
func TestSASLMechanisms(t *testing.T) {
	for _, m := range []string{MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512} {
		t.Run(m, func(t *testing.T) {
			c := startCluster(t, kfake.Superuser(m, "producer", password))
			c.mechanism, c.user = m, "producer"
			snd := open(t, c.config(t, nil), password, destinationtest.Allowing())
			require.NoError(t, snd.Send(context.Background(), []destination.Event{destinationtest.Event(1, "group_created")}))
			c.mechanism, c.user = MechanismSCRAMSHA256, user // the reader's
			require.Equal(t, []int64{1}, c.delivered(t))

			// A wrong password: kfake closes the connection where Kafka answers
			// SASL_AUTHENTICATION_FAILED (TestOAuthBearer answers as Kafka does: permanent), so the
			// failure here is retryable; it never shows the password.
			c.mechanism, c.user = m, "producer"
			wrong := "wrong-" + password
			bad := open(t, c.config(t, nil), wrong, destinationtest.Allowing())
			err := bad.Send(context.Background(), []destination.Event{destinationtest.Event(2, "group_created")})
			f := destination.Classify(err)
			require.NotContains(t, f.Error(), wrong)
			require.NotContains(t, f.Err.Error(), wrong)
		})
	}
}

// TestOAuthBearer: kfake has no OAUTHBEARER, so the test answers the SASL handshake and
// authentication itself (RFC 7628's client response: "n,,\x01auth=Bearer <token>\x01\x01") and
// lets the cluster handle the rest.
func TestOAuthBearer(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	require.NoError(t, err)
	t.Cleanup(kc.Close)
	const token = "eyJhbGciOiJSUzI1NiJ9.oauth-S3cr3t-token"
	var got []string
	kc.ControlKey(int16(kmsg.SASLHandshake), func(req kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
		resp.SupportedMechanisms = []string{MechanismOAuthBearer}
		if req.(*kmsg.SASLHandshakeRequest).Mechanism != MechanismOAuthBearer {
			resp.ErrorCode = 33 // UNSUPPORTED_SASL_MECHANISM
		}
		return resp, nil, true
	})
	kc.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		msg := string(req.(*kmsg.SASLAuthenticateRequest).SASLAuthBytes)
		got = append(got, msg)
		resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		if msg != "n,,\x01auth=Bearer "+token+"\x01\x01" {
			resp.ErrorCode = 58 // SASL_AUTHENTICATION_FAILED
			msgText := "invalid token"
			resp.ErrorMessage = &msgText
		}
		return resp, nil, true
	})
	c := &cluster{Cluster: kc, mechanism: MechanismOAuthBearer}
	snd := open(t, c.config(t, nil), token, destinationtest.Allowing())
	require.NoError(t, snd.Send(context.Background(), []destination.Event{destinationtest.Event(1, "group_created")}))
	require.NotEmpty(t, got)
	c.mechanism = ""
	require.Equal(t, []int64{1}, c.delivered(t))

	c.mechanism = MechanismOAuthBearer
	bad := open(t, c.config(t, nil), "not-the-token", destinationtest.Allowing())
	f := destination.Classify(bad.Send(context.Background(), []destination.Event{destinationtest.Event(2, "group_created")}))
	require.Equal(t, destination.Permanent, f.Kind, f.Error())
	require.NotContains(t, f.Error(), "not-the-token")
}

// TestTLS delivers over TLS to brokers whose certificate a private CA signed, given as
// caCertificate, and fails retryable without it (the system's roots do not know the CA).
func TestTLS(t *testing.T) {
	caPEM, serverCert := newCA(t)
	c := startCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}))
	snd := open(t, c.config(t, map[string]any{"tls": true, "caCertificate": caPEM}), password, destinationtest.Allowing())
	require.NoError(t, snd.Send(context.Background(), []destination.Event{destinationtest.Event(1, "group_created")}))

	untrusted := open(t, c.config(t, map[string]any{"tls": true}), password, destinationtest.Allowing())
	f := destination.Classify(untrusted.Send(context.Background(), []destination.Event{destinationtest.Event(2, "group_created")}))
	require.Equal(t, destination.Retryable, f.Kind, f.Error())
	require.Contains(t, f.Message, "TLS handshake")
	require.Contains(t, f.Message, "certificate")
}

// newCA makes a CA and a certificate it signs for 127.0.0.1.
func newCA(t *testing.T) (string, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "broker"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})), tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}
}

// TestNewNeedsTheSecretWithSASL: a SASL mechanism without its password is a permanent settings
// failure; without SASL no secret is needed.
func TestNewNeedsTheSecretWithSASL(t *testing.T) {
	c := startCluster(t)
	_, err := New(destination.Settings{Category: Category, Config: c.config(t, nil)}, destinationtest.Allowing())
	f := destination.Classify(err)
	require.Equal(t, destination.Permanent, f.Kind)
	require.Contains(t, f.Message, "SCRAM-SHA-256 mechanism needs the SASL password")
	c.mechanism = ""
	snd, err := New(destination.Settings{Category: Category, Config: c.config(t, nil)}, destinationtest.Allowing())
	require.NoError(t, err)
	require.NoError(t, snd.Close())
}

// TestFormats: with format ocsf or cef, each record's value is the event in that format; its
// key (the top-level group, read from the event JSON) and headers stay.
func TestFormats(t *testing.T) {
	for _, name := range []string{"ocsf", "cef"} {
		t.Run(name, func(t *testing.T) {
			c := startCluster(t)
			snd := open(t, c.config(t, map[string]any{"format": name}), password, destinationtest.Allowing())
			batch := []destination.Event{groupEvent(1, "Group", "org/sub"), groupEvent(2, "Project", "other/app")}
			require.NoError(t, snd.Send(context.Background(), batch))
			got := c.records(t)
			require.Len(t, got, 2)
			slices.SortFunc(got, func(a, b record) int { return cmp.Compare(a.ID, b.ID) })
			for i, e := range batch {
				require.Equal(t, e.ID, got[i].ID)
				require.Equal(t, e.Type, got[i].Type)
				require.Equal(t, string(destinationtest.Encoded(t, name, e)), string(got[i].Value))
			}
			require.Equal(t, []string{"org", "other"}, []string{got[0].Key, got[1].Key})
		})
	}
}
