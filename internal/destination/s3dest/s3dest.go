// Package s3dest delivers events to Amazon S3 or an S3-compatible object store (design 5.7),
// in the layouts of package objectstore.
//
// Each event is written in the destination's format (config.format): the event JSON exactly as
// streamed (GitLab's, the default) or its OCSF JSON. Without config.batch, each event is one
// object, GitLab's layout: a PutObject of the event's JSON at objectstore.EventKey, with Content-Type application/json. A Send
// with several events (the engine does not do that for such a destination) puts them one after
// the other and stops at the first failure, which it returns: the objects already written are
// harmless, since delivering the same event again writes the same key with the same content.
//
// With config.batch, each Send is one object: objectstore.GzipNDJSON of the events at
// objectstore.BatchKey, with Content-Type application/x-ndjson and Content-Encoding gzip. The
// same batch delivered again writes the same key.
//
// Requests are signed with SigV4 (the payload's SHA-256 included) with the static credentials
// config.accessKeyXid and the secret token (the secret access key), for config.awsRegion. They
// go to config.endpoint when it is set (an S3-compatible store; its user info, query and
// fragment are ignored), path-style when config.pathStyle is true, else to AWS's endpoint for
// the region. They are sent by env.HTTPClient, so the SSRF guard of internal/netguard applies
// to the store's address. The SDK does not retry (the delivery engine does) and adds no
// optional checksums (many S3-compatible stores refuse the aws-chunked uploads they need).
//
// A failed PutObject is classified from S3's error code and HTTP status:
//
//   - SlowDown and the other throttling codes, 429 and 503 are Throttled, with Retry-After
//     when the store sent one;
//   - RequestTimeout, RequestTimeTooSkewed (the SDK corrects its clock from the response),
//     InternalError, OperationAborted, 408, 425 and other 5xx are Retryable, and so are
//     network errors and garbled responses;
//   - other codes and statuses (AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch,
//     NoSuchBucket, InvalidBucketName, PermanentRedirect, most 3xx and 4xx) are Permanent, and
//     so is a dial that the SSRF guard refused (netguard.ErrBlocked), with the guard's message.
//
// A failure's Message names the problem in a few words, then S3's error code and at most 200
// bytes of its message, printable characters only; the secret access key is blanked out
// should the store echo it (S3 puts the string to sign and the signature in other elements of
// its error, which are not quoted).
package s3dest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/objectstore"
	"github.com/auditstream/auditstream/internal/netguard"
)

// appID is sent in the SDK's User-Agent.
const appID = "auditstream"

// Limits on messages.
const (
	// maxMessage bounds S3's error message quoted in a Failure's Message, in bytes.
	maxMessage = 200
	// minRedactLen is the shortest secret blanked out of messages.
	minRedactLen = 4
)

var _ destination.Factory = New

// sender is the Sender of one aws destination. It is immutable after New, so safe for
// concurrent use (s3.Client is).
type sender struct {
	client     *s3.Client
	httpClient *http.Client
	ownClient  bool // made by New because env had none: Close closes its idle connections
	bucket     string
	batched    bool
	enc        destination.Encoding
	secrets    []string // blanked out of messages, longest first
	now        func() time.Time
}

// New makes the Sender of an aws destination. It is a destination.Factory. s.Config must
// name the access key id, the bucket and the region, and s.SecretToken holds the secret access
// key; config.endpoint, when set, must be an http(s) URL with a host. The errors are
// *destination.Failure, Permanent, and name no secret. env.HTTPClient is shared and not
// closed; when it is nil, New makes a client with the default netguard.Policy, which Close
// releases.
func New(s destination.Settings, env destination.Env) (destination.Sender, error) {
	return Type.Open(s, env)
}

func newSender(cfg Config, s destination.Settings, env destination.Env) (destination.Sender, error) {
	if s.SecretToken == "" {
		return nil, destination.SettingsFailure("the secret access key is missing")
	}
	var endpoint string
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, destination.SettingsFailure("config.endpoint is not an http:// or https:// URL with a host")
		}
		endpoint = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}).String()
	}

	snd := &sender{
		httpClient: env.HTTPClient,
		bucket:     cfg.BucketName,
		batched:    cfg.Batched,
		enc:        s.Format,
		now:        env.Now,
	}
	if snd.httpClient == nil {
		snd.httpClient, snd.ownClient = netguard.Policy{}.HTTPClient(), true
	}
	if snd.now == nil {
		snd.now = time.Now
	}
	// The secret and its URL-escaped form, should a store echo either (the SDK decodes the
	// XML of its errors), longest first.
	escaped := url.QueryEscape(s.SecretToken)
	snd.secrets = []string{escaped}
	if escaped != s.SecretToken {
		snd.secrets = append(snd.secrets, s.SecretToken)
	}
	if len(s.SecretToken) < minRedactLen {
		snd.secrets = nil
	}

	var baseEndpoint *string
	if endpoint != "" {
		baseEndpoint = aws.String(endpoint)
	}
	snd.client = s3.New(s3.Options{
		AppID:                      appID,
		BaseEndpoint:               baseEndpoint,
		Region:                     cfg.AWSRegion,
		Credentials:                credentials.NewStaticCredentialsProvider(cfg.AccessKeyXid, s.SecretToken, ""),
		HTTPClient:                 snd.httpClient,
		Retryer:                    aws.NopRetryer{},
		RetryMaxAttempts:           1,
		UsePathStyle:               cfg.PathStyle,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	return snd, nil
}

// sendEvents puts batch: one object per event, or one object for the batch when the destination
// batches. See the package documentation.
func (s *sender) sendEvents(ctx context.Context, batch []destination.Event) error {
	if len(batch) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	payloads, err := s.enc.Payloads(batch)
	if err != nil {
		return err
	}
	if s.batched {
		body := objectstore.GzipLines(payloads)
		return s.put(ctx, &s3.PutObjectInput{
			Key:             aws.String(objectstore.BatchKey("", batch)),
			Body:            bytes.NewReader(body),
			ContentLength:   aws.Int64(int64(len(body))),
			ContentType:     aws.String(objectstore.BatchContentType),
			ContentEncoding: aws.String(objectstore.BatchEncoding),
		})
	}
	for i, e := range batch {
		err := s.put(ctx, &s3.PutObjectInput{
			Key:           aws.String(objectstore.EventKey("", e)),
			Body:          bytes.NewReader(payloads[i]),
			ContentLength: aws.Int64(int64(len(payloads[i]))),
			ContentType:   aws.String(objectstore.EventContentType),
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *sender) put(ctx context.Context, in *s3.PutObjectInput) error {
	in.Bucket = aws.String(s.bucket)
	tctx, peer := destination.TracePeer(ctx)
	if _, err := s.client.PutObject(tctx, in); err != nil {
		return s.classify(ctx, err, peer)
	}
	return nil
}

// Close releases the idle connections of the client New made when env had none. A shared
// client is left alone.
func (s *sender) Close() error {
	if s.ownClient {
		s.httpClient.CloseIdleConnections()
	}
	return nil
}

// S3 error codes that the classification names.
var (
	throttleCodes = map[string]bool{
		"SlowDown": true, "Throttling": true, "ThrottlingException": true, "ThrottledException": true,
		"RequestLimitExceeded": true, "TooManyRequests": true, "TooManyRequestsException": true,
		"RequestThrottled": true, "RequestThrottledException": true, "ServiceUnavailable": true,
	}
	retryCodes = map[string]bool{
		"RequestTimeout": true, "RequestTimeoutException": true, "RequestTimeTooSkewed": true,
		"InternalError": true, "OperationAborted": true,
	}
)

// classify turns an error of PutObject into a *destination.Failure, or returns the context's
// error when ctx ended. The error document of an internal store (peer.Internal: allowed only by
// --destination-allow-cidrs) is not quoted, only its error code.
func (s *sender) classify(ctx context.Context, err error, peer *destination.Peer) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	var be *netguard.BlockedError
	if errors.As(err, &be) {
		return &destination.Failure{Kind: destination.Permanent, Message: be.Error(), Err: err}
	}
	// The SDK wraps every error of a sent request in a ResponseError, with an empty response
	// when there was none: a RequestSendError says so.
	var se *smithyhttp.RequestSendError
	if errors.As(err, &se) {
		return &destination.Failure{Kind: destination.Retryable, Message: s.describe(se.Err), Err: err}
	}
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.Response == nil || re.Response.Response == nil || re.HTTPStatusCode() == 0 {
		// Neither sent nor answered: the SDK refused to make the request (an endpoint or
		// region it cannot use). The same config fails the same way every time.
		return &destination.Failure{Kind: destination.Permanent,
			Message: "cannot make the S3 request: " + s.clean(err.Error(), maxMessage), Err: err}
	}
	status := re.HTTPStatusCode()
	var code, msg string
	var api smithy.APIError
	if errors.As(err, &api) {
		code, msg = api.ErrorCode(), s.clean(api.ErrorMessage(), maxMessage)
		if peer.Internal() {
			msg = ""
		}
		// Without an error document, the SDK makes the code and message up from the status.
		if t := http.StatusText(status); msg == t && code == strings.ReplaceAll(t, " ", "") {
			code, msg = "", ""
		}
	}
	f := &destination.Failure{StatusCode: status, Err: err, Message: s.describeAPI(code, msg, status)}
	switch {
	case status >= 200 && status < 300:
		// An answer that the SDK could not read.
		f.Kind = destination.Retryable
	case throttleCodes[code], status == http.StatusTooManyRequests, status == http.StatusServiceUnavailable:
		f.Kind = destination.Throttled
		f.RetryAfter = destination.ParseRetryAfter(re.Response.Header.Get("Retry-After"), s.now())
	case retryCodes[code], status == http.StatusRequestTimeout, status == http.StatusTooEarly, status >= 500:
		f.Kind = destination.Retryable
		f.RetryAfter = destination.ParseRetryAfter(re.Response.Header.Get("Retry-After"), s.now())
	default:
		f.Kind = destination.Permanent
	}
	return f
}

// describeAPI says what S3's answer means: a phrase for the codes that a destination's owner
// can act on, then the code and S3's message.
func (s *sender) describeAPI(code, msg string, status int) string {
	var what string
	switch code {
	case "InvalidAccessKeyId":
		what = "the access key is not valid"
	case "SignatureDoesNotMatch":
		what = "the secret access key does not match the access key id"
	case "AccessDenied", "AllAccessDisabled":
		what = "access to bucket " + s.bucket + " is denied: the access key needs s3:PutObject on it"
	case "NoSuchBucket":
		what = "bucket " + s.bucket + " does not exist"
	case "InvalidBucketName":
		what = "bucket name " + s.bucket + " is not valid"
	case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
		what = "bucket " + s.bucket + " is not in the configured region or must be reached at another endpoint"
	case "ExpiredToken", "InvalidToken", "TokenRefreshRequired":
		what = "the credentials are not valid"
	case "AccountProblem":
		what = "the AWS account has a problem that prevents the upload"
	case "EntityTooLarge":
		what = "the object is too large for the store"
	case "SlowDown", "Throttling", "TooManyRequests", "RequestLimitExceeded":
		what = "the store asks to slow down"
	case "":
		switch {
		case status >= 300 && status < 400:
			return http.StatusText(status) + ": redirects are not followed; check the region and config.endpoint"
		case status == http.StatusNotFound:
			return "not found: check config.endpoint and the bucket name"
		case status == http.StatusForbidden:
			return "access denied"
		case status == http.StatusTooManyRequests, status == http.StatusServiceUnavailable:
			return "the store asks to slow down (" + http.StatusText(status) + ")"
		}
		if t := http.StatusText(status); t != "" {
			return strings.ToLower(t)
		}
		return fmt.Sprintf("HTTP status %d", status)
	}
	detail := code
	if msg != "" {
		detail += ": " + msg
	}
	if what == "" {
		return detail
	}
	return what + " (" + detail + ")"
}

// describe says in a few words why a request got no response. It does not quote the URL.
func (s *sender) describe(err error) string {
	text := destination.Unwrapped(err).Error()
	var rhe tls.RecordHeaderError
	switch {
	case strings.Contains(text, "Client.Timeout") && s.httpClient.Timeout > 0:
		return "timeout after " + s.httpClient.Timeout.String() + " without a complete response"
	case strings.Contains(text, "timeout awaiting response headers"):
		return "timeout waiting for the response headers"
	case strings.Contains(text, "TLS handshake timeout"):
		return "TLS handshake timeout"
	case errors.As(err, &rhe), strings.Contains(text, "server gave HTTP response to HTTPS client"):
		return "TLS handshake failed: the store did not answer with TLS (should config.endpoint start with http://?)"
	case errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return "the store closed the connection without a complete response"
	}
	if c := destination.NetCause(err, "the store"); c != "" {
		return c
	}
	return s.clean(text, maxMessage)
}

// clean scrubs text of the sender's secrets (destination.Scrub).
func (s *sender) clean(text string, max int) string {
	return destination.Scrub(text, max, s.secrets...)
}
