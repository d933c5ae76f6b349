// Package syslog delivers events to a syslog collector (QRadar, ArcSight, Microsoft Sentinel's
// syslog/CEF collector, rsyslog, syslog-ng) as RFC 5424 messages over TCP with octet-counting
// framing (RFC 6587), or over TLS (RFC 5425).
//
// Each event is one message: "<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID - MSG", where PRI is
// the config's facility × 8 + 6 (informational), TIMESTAMP the event's created_at (UTC, in
// milliseconds), MSGID the event type (cut to RFC 5424's 32 characters) and MSG the event in
// the destination's format (config.format), without a BOM: the event JSON as streamed, or one
// CEF line, as ArcSight and Microsoft Sentinel's CEF connector read it. A Send writes its events' frames on one connection, in order;
// connections are kept for the next Sends.
//
// Syslog over TCP has no acknowledgement: a Send succeeds once its frames are written to the
// connection. Before it reuses a connection, the sender checks that the collector has not
// closed it; a collector that dies after taking the bytes may still lose them (RELP would say;
// it is not implemented). Every dial goes through env.Dial (the SSRF guard): a refused address is
// permanent; other network and TLS failures are retried.
package syslog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/netguard"
)

// Severity is RFC 5424's severity of every message: 6, informational.
const Severity = 6

// maxMsgID is RFC 5424's bound on MSGID.
const maxMsgID = 32

// maxIdle bounds the connections kept for the next Sends.
const maxIdle = 8

// WriteTimeout bounds the writing of a Send's frames.
const WriteTimeout = 30 * time.Second

type options struct{}

var _ destination.Factory = New

// New makes the Sender of a syslog destination. It is a destination.Factory: s.Config is the
// stored config, read with Type's rules. New makes no network request.
func New(s destination.Settings, env destination.Env) (destination.Sender, error) {
	return Type.Open(s, env)
}

type sender struct {
	cfg  Config
	dial func(ctx context.Context, network, address string) (net.Conn, error)
	tls  *tls.Config
	pri  string // "<PRI>1 "
	enc  destination.Encoding

	mu     sync.Mutex
	idle   []net.Conn
	closed bool
}

func newSender(cfg Config, st destination.Settings, env destination.Env, _ options) (destination.Sender, error) {
	s := &sender{cfg: cfg, dial: env.Dial, pri: "<" + strconv.Itoa(cfg.Facility*8+Severity) + ">1 ", enc: st.Format}
	if s.dial == nil {
		s.dial = netguard.Policy{}.DialContext
	}
	if cfg.TLS {
		host, _, _ := net.SplitHostPort(cfg.Address)
		s.tls = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
		if cfg.CACertificate != "" {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM([]byte(cfg.CACertificate)) {
				return nil, destination.SettingsFailure("config.caCertificate holds no certificate")
			}
			s.tls.RootCAs = pool
		}
	}
	return s, nil
}

// appendMessage appends the RFC 5424 message of e (without its frame) to b. It fails only when
// e cannot be written in the destination's format (a permanent failure).
func (s *sender) appendMessage(b []byte, e destination.Event) ([]byte, error) {
	b = append(b, s.pri...)
	if e.CreatedAt.IsZero() {
		b = append(b, '-')
	} else {
		b = e.CreatedAt.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	}
	b = append(b, ' ')
	b = append(b, s.cfg.Hostname...)
	b = append(b, ' ')
	b = append(b, s.cfg.AppName...)
	b = append(b, " - "...)
	b = append(b, msgID(e.Type)...)
	b = append(b, " - "...)
	return s.enc.Append(b, e)
}

// msgID is an event type as a MSGID: printable ASCII, at most 32 characters, "-" when empty.
func msgID(t string) string {
	out := make([]byte, 0, min(len(t), maxMsgID))
	for i := 0; i < len(t) && len(out) < maxMsgID; i++ {
		if c := t[i]; c >= 33 && c <= 126 {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return string(out)
}

// Send writes one octet-counted frame per event on one connection. See the package
// documentation.
func (s *sender) Send(ctx context.Context, batch []destination.Event) error {
	if len(batch) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var buf, msg []byte
	for _, e := range batch {
		var err error
		if msg, err = s.appendMessage(msg[:0], e); err != nil {
			return err
		}
		buf = strconv.AppendInt(buf, int64(len(msg)), 10)
		buf = append(buf, ' ')
		buf = append(buf, msg...)
	}
	conn, err := s.conn(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(WriteTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetWriteDeadline(deadline)
	if _, err := conn.Write(buf); err != nil {
		_ = conn.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return &destination.Failure{Kind: destination.Retryable, Message: "writing to " + s.cfg.Address + ": " + cause(err), Err: err}
	}
	s.put(conn)
	return nil
}

// conn returns a kept connection the collector has not closed, or a new one.
func (s *sender) conn(ctx context.Context) (net.Conn, error) {
	for {
		s.mu.Lock()
		if len(s.idle) == 0 {
			s.mu.Unlock()
			break
		}
		c := s.idle[len(s.idle)-1]
		s.idle = s.idle[:len(s.idle)-1]
		s.mu.Unlock()
		if alive(c) {
			return c, nil
		}
		_ = c.Close()
	}
	c, err := s.dial(ctx, "tcp", s.cfg.Address)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		var be *netguard.BlockedError
		if errors.As(err, &be) {
			return nil, &destination.Failure{Kind: destination.Permanent, Message: be.Error(), Err: be}
		}
		return nil, &destination.Failure{Kind: destination.Retryable, Message: "connecting to " + s.cfg.Address + ": " + cause(err), Err: err}
	}
	if s.tls == nil {
		return c, nil
	}
	tc := tls.Client(c, s.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, &destination.Failure{Kind: destination.Retryable, Message: "TLS handshake with " + s.cfg.Address + ": " + destination.Scrub(err.Error(), destination.MessageBodyLen), Err: err}
	}
	return tc, nil
}

// alive reports whether the collector has not closed c: a read that would block means the
// connection is open (a collector sends nothing over syslog).
func alive(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
	var one [1]byte
	_, err := c.Read(one[:])
	_ = c.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (s *sender) put(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.idle) >= maxIdle {
		_ = c.Close()
		return
	}
	s.idle = append(s.idle, c)
}

// cause says what a network error was, without the addresses Go puts in it.
func cause(err error) string {
	if c := destination.NetCause(err, "the collector"); c != "" {
		return c
	}
	return destination.Scrub(destination.Unwrapped(err).Error(), destination.MessageBodyLen)
}

// Close closes the kept connections.
func (s *sender) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, c := range s.idle {
		_ = c.Close()
	}
	s.idle = nil
	return nil
}
