package kafka

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/auditstream/auditstream/internal/destination"
)

// Category is the kafka category's name in the API and the store.
const Category = "kafka"

// SASL mechanisms (config.saslMechanism), as Kafka names them.
const (
	MechanismPlain       = "PLAIN"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
	MechanismOAuthBearer = "OAUTHBEARER"
)

// Limits of a config.
const (
	// MaxBrokers bounds config.brokers: a bootstrap list names a few brokers, not the cluster.
	MaxBrokers = 32
	// MaxBrokersLen bounds config.brokers in characters.
	MaxBrokersLen = 2048
	// MaxTopicLen is Kafka's limit on a topic name.
	MaxTopicLen = 249
	// MaxUsernameLen bounds config.username (an Event Hubs username is "$ConnectionString").
	MaxUsernameLen = 255
	// MaxCACertificateLen bounds config.caCertificate (PEM).
	MaxCACertificateLen = 32 << 10
	// MaxBatchBytes bounds config.batch.maxBytes: Kafka's default message.max.bytes is about
	// 1 MB per record batch, and a Send of several partitions makes several.
	MaxBatchBytes = 8 << 20
)

// topicPattern is Kafka's rule for topic names (Topic.validate in Apache Kafka).
var topicPattern = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// Config is a kafka destination's config, checked (see Type).
type Config struct {
	// Brokers are the bootstrap brokers, host:port each.
	Brokers []string
	Topic   string
	// TLS connects with TLS (Kafka's SASL_SSL or SSL); without it, in clear (PLAINTEXT or
	// SASL_PLAINTEXT), Kafka's own default.
	TLS bool
	// CACertificate, when set, is the PEM of the certificates that sign the brokers' (a private
	// CA); otherwise the system's roots.
	CACertificate string
	// SASLMechanism is one of the Mechanism constants, or "" for no SASL.
	SASLMechanism string
	// Username is the SASL user of PLAIN and SCRAM.
	Username string
}

// Type is the kafka category (ours): each event is one record of config.topic, keyed by its
// top-level group so that a group's events stay in one partition, in order. The config:
//
//   - brokers (required): the bootstrap brokers, as Kafka's bootstrap.servers writes them:
//     host:port separated by commas, at most MaxBrokers of them, at most MaxBrokersLen
//     characters.
//   - topic (required): 1 to 249 of [a-zA-Z0-9._-], not "." or "..".
//   - tls (boolean, default false as in Kafka): connect with TLS. caCertificate (optional, only
//     with tls): the PEM certificates of a private CA.
//   - saslMechanism (optional): PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER. username:
//     required with PLAIN and SCRAM, refused otherwise.
//   - batch: maxBytes at most MaxBatchBytes.
//
// The secret is the SASL password (PLAIN, SCRAM) or the OAuth bearer token (OAUTHBEARER): at
// most destination.MaxSecretTokenLen printable characters. It may be empty without SASL; with
// SASL the sender refuses to start without it.
var Type = &destination.Type{
	Category: Category,
	Title:    "Apache Kafka",
	Fields: []destination.Field{
		{Key: "brokers", Label: "Bootstrap brokers", Kind: "text", Required: true, Help: "host:port, separated by commas, for example broker-1.example.com:9093,broker-2.example.com:9093."},
		{Key: "topic", Label: "Topic", Kind: "text", Required: true, Help: "Each event is one record, keyed by its top-level group."},
		{Key: "tls", Label: "TLS", Kind: "checkbox", Help: "Needed by Confluent Cloud, Azure Event Hubs and most managed clusters."},
		{Key: "saslMechanism", Label: "SASL mechanism", Kind: "text", Help: "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER; empty for none."},
		{Key: "username", Label: "SASL username", Kind: "text", Help: "For PLAIN and SCRAM. Azure Event Hubs: $ConnectionString."},
		{Key: "caCertificate"}, // a private CA's PEM: the API's, not the form's
	},
	MaxBatchBytes: MaxBatchBytes,
	Parse:         parse,
	Secret: destination.Secret{
		Optional: true,
		Check: func(secret string) string {
			if strings.ContainsFunc(secret, func(r rune) bool { return !unicode.IsPrint(r) }) {
				return "must be the SASL password or OAuth token: printable characters only"
			}
			return ""
		},
		Label: "SASL password or token", Kind: "password",
		Help: "The SASL password (PLAIN, SCRAM) or the OAuth bearer token (OAUTHBEARER). Azure Event Hubs: the connection string.",
	},
	New: func(cfg any, s destination.Settings, env destination.Env) (destination.Sender, error) {
		return newSender(cfg.(Config), s, env, options{})
	},
	Where: func(cfg any) string {
		c := cfg.(Config)
		if len(c.Brokers) == 0 {
			return ""
		}
		return c.Topic + " at " + c.Brokers[0]
	},
}

func parse(o *destination.Object) any {
	var cfg Config
	if s, ok := o.String("brokers", true); ok {
		f := o.Field("brokers")
		if o.Length(f, s, 1, MaxBrokersLen) {
			cfg.Brokers = brokers(o, f, s)
			if cfg.Brokers != nil {
				o.SetString("brokers", strings.Join(cfg.Brokers, ","))
			}
		}
	}
	if s, ok := o.String("topic", true); ok {
		f := o.Field("topic")
		switch {
		case !o.Length(f, s, 1, MaxTopicLen):
		case s == "." || s == "..":
			o.Problem(f, destination.CodeInvalid, 0, `must not be "." or ".."`)
		case o.Match(f, s, topicPattern, "may only contain letters, digits, ., _ and -"):
			o.SetString("topic", s)
			cfg.Topic = s
		}
	}
	cfg.TLS, cfg.CACertificate = o.TLS(MaxCACertificateLen)
	if s, ok := o.String("saslMechanism", false); ok {
		f := o.Field("saslMechanism")
		switch m := strings.ToUpper(s); m {
		case MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512, MechanismOAuthBearer:
			o.SetString("saslMechanism", m)
			cfg.SASLMechanism = m
		default:
			o.Problem(f, destination.CodeInvalid, 0, "must be PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER")
		}
	}
	needsUser := cfg.SASLMechanism != "" && cfg.SASLMechanism != MechanismOAuthBearer
	user, hasUser := o.String("username", false)
	switch f := o.Field("username"); {
	case hasUser && !needsUser && o.Has("saslMechanism") && cfg.SASLMechanism == "":
		// the mechanism was refused: that is the problem to fix
	case hasUser && !needsUser:
		o.Problem(f, destination.CodeInvalid, 0, "is only used with the PLAIN and SCRAM mechanisms")
	case !hasUser && needsUser:
		o.Problem(f, destination.CodeRequired, 0, "is required with the "+cfg.SASLMechanism+" mechanism")
	case hasUser && o.Printable(f, user, MaxUsernameLen):
		o.SetString("username", user)
		cfg.Username = user
	}
	return cfg
}

// brokers checks a bootstrap list and returns its host:port entries, or nil after reporting
// what is wrong. A reported problem never quotes the list.
func brokers(o *destination.Object, field, s string) []string {
	var out []string
	for i, b := range strings.Split(s, ",") {
		b = strings.TrimSpace(b)
		host, port, err := net.SplitHostPort(b)
		n, perr := strconv.Atoi(port)
		switch {
		case b == "":
			o.Problem(field, destination.CodeInvalid, 0, "must not have an empty entry (a comma too many)")
			return nil
		case err != nil || host == "" || perr != nil || n < 1 || n > 65535:
			o.Problem(field, destination.CodeInvalid, 0, "entry "+strconv.Itoa(i+1)+" is not a host:port with a port from 1 to 65535")
			return nil
		case strings.ContainsFunc(host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' || r == '@' }):
			o.Problem(field, destination.CodeInvalid, 0, "entry "+strconv.Itoa(i+1)+" is not a host name or IP address")
			return nil
		}
		out = append(out, net.JoinHostPort(host, port))
	}
	if len(out) > MaxBrokers {
		o.Problem(field, destination.CodeTooMany, MaxBrokers, "names "+strconv.Itoa(len(out))+" brokers, at most "+strconv.Itoa(MaxBrokers)+" are allowed")
		return nil
	}
	return out
}
