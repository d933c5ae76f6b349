package destination_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
)

// secretMarker is part of every secret-looking test value; no error message may contain it.
const secretMarker = "S3cr3tV4lue"

// problem is what a test asserts about one *ConfigError.
type problem struct {
	Field, Code string
	Limit       int
}

func problems(err error) []problem {
	var out []problem
	for _, e := range destination.ConfigErrors(err) {
		out = append(out, problem{e.Field, e.Code, e.Limit})
	}
	return out
}

var rep = strings.Repeat

// headersJSON returns an http headers object with n headers H01, H02, ….
func headersJSON(n int) string {
	var parts []string
	for i := 1; i <= n; i++ {
		parts = append(parts, fmt.Sprintf(`"H%02d":{"value":"v%d"}`, i, i))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// header returns a config with one header name → entry.
func header(name, entry string) string {
	return `{"url":"https://e.com","headers":{` + name + `:` + entry + `}}`
}

const (
	httpURL   = "https://e.com"
	httpOnly  = `{"url":"https://e.com"}`
	awsBase   = `"accessKeyXid":"AKIAIOSFODNN7EXAMPLE","bucketName":"my-bucket","awsRegion":"us-east-1"`
	awsWant   = `{"accessKeyXid":"AKIAIOSFODNN7EXAMPLE","awsRegion":"us-east-1","bucketName":"my-bucket"}`
	gcpBase   = `"googleProjectIdName":"my-project-1","clientEmail":"sa@my-project-1.iam.gserviceaccount.com"`
	gcpWant   = `{"clientEmail":"sa@my-project-1.iam.gserviceaccount.com","googleProjectIdName":"my-project-1","logIdName":"audit-events"}`
	batchWant = `{"maxBytes":1048576,"maxEvents":100,"maxWaitMs":1000}`
)

type configCase struct {
	name     string
	category string
	raw      string
	// want is the normalized JSON and headers the headers, when the config is valid.
	want    string
	headers []destination.Header
	// errs are the problems, in any order, when it is not.
	errs []problem
}

func bad(field, code string) []problem { return []problem{{field, code, 0}} }

func configCases() []configCase {
	const (
		http, aws, gcp, gcs, splunk = destination.CategoryHTTP, destination.CategoryAWS, destination.CategoryGCP,
			destination.CategoryGCS, destination.CategorySplunk
		R, I, W, U = destination.CodeRequired, destination.CodeInvalid, destination.CodeWrongType, destination.CodeUnknownField
		TL, TS     = destination.CodeTooLong, destination.CodeTooShort
	)
	url255 := "https://e.com/" + rep("a", 255-14)
	name255 := rep("N", 255)
	cases := []configCase{
		// The document as a whole.
		{name: "empty", category: http, raw: ``, errs: bad("config", R)},
		{name: "null", category: http, raw: ` null `, errs: bad("config", R)},
		{name: "array", category: http, raw: `[]`, errs: bad("config", W)},
		{name: "string", category: aws, raw: `"x"`, errs: bad("config", W)},
		{name: "syntax", category: http, raw: `{"url":`, errs: bad("config", I)},
		{name: "two values", category: http, raw: httpOnly + ` {}`, errs: bad("config", I)},
		{name: "not UTF-8", category: http, raw: "{\"url\":\"https://e.com/\xff\"}", errs: bad("config", I)},
		{name: "too long", category: http, raw: `{"url":"https://e.com"` + rep(" ", destination.MaxConfigBytes) + `}`,
			errs: []problem{{"config", TL, destination.MaxConfigBytes}}},
		{name: "nested too deep", category: http, raw: `{"url":"https://e.com","a":` + rep(`{"a":`, 20) + `1` + rep(`}`, 20) + `}`,
			errs: bad("config"+rep(".a", 16), I)},
		{name: "duplicate key", category: http, raw: `{"url":"https://e.com","url":"https://f.com"}`, errs: bad("config.url", I)},
		{name: "duplicate key reported once", category: gcs, raw: `{"bucketName":"abc","bucketName":"abd","bucketName":"abe"}`,
			errs: bad("config.bucketName", I)},
		{name: "duplicate key in unknown object", category: gcs, raw: `{"bucketName":"abc","x":[{"k":1,"k":2}]}`,
			errs: []problem{{"config.x[0].k", I, 0}, {"config.x", U, 0}}},
		{name: "unknown field", category: http, raw: `{"url":"https://e.com","concurrency":4}`, errs: bad("config.concurrency", U)},
		{name: "unknown odd field", category: http, raw: `{"url":"https://e.com","a b":1}`, errs: bad(`config["a b"]`, U)},
		{name: "unknown category", category: "ftp", raw: httpOnly, errs: bad("category", destination.CodeUnknownCategory)},
		{name: "category is case-sensitive", category: "HTTP", raw: httpOnly, errs: bad("category", destination.CodeUnknownCategory)},

		// http url.
		{name: "url", category: http, raw: `{"url":"https://e.com/hook?a=1&b=<2>"}`, want: `{"url":"https://e.com/hook?a=1&b=<2>"}`},
		{name: "url http", category: http, raw: `{"url":"http://10.0.0.1:8080"}`, want: `{"url":"http://10.0.0.1:8080"}`},
		{name: "url variable", category: http, raw: `{"url":"$DESTINATION"}`, want: `{"url":"$DESTINATION"}`},
		{name: "url 255", category: http, raw: `{"url":"` + url255 + `"}`, want: `{"url":"` + url255 + `"}`},
		{name: "url 256", category: http, raw: `{"url":"` + url255 + `a"}`, errs: []problem{{"config.url", TL, 255}}},
		{name: "url missing", category: http, raw: `{}`, errs: bad("config.url", R)},
		{name: "url null", category: http, raw: `{"url":null}`, errs: bad("config.url", R)},
		{name: "url empty", category: http, raw: `{"url":""}`, errs: bad("config.url", R)},
		{name: "url number", category: http, raw: `{"url":5}`, errs: bad("config.url", W)},
		{name: "url ftp", category: http, raw: `{"url":"ftp://e.com"}`, errs: bad("config.url", I)},
		{name: "url upper-case scheme", category: http, raw: `{"url":"HTTPS://e.com"}`, errs: bad("config.url", I)},
		{name: "url no host", category: http, raw: `{"url":"https://:80/x"}`, errs: bad("config.url", I)},
		{name: "url only scheme", category: http, raw: `{"url":"https://"}`, errs: bad("config.url", I)},
		{name: "url bad escape", category: http, raw: `{"url":"https://%zz"}`, errs: bad("config.url", I)},
		{name: "url space", category: http, raw: `{"url":"https://e.com/a b"}`, errs: bad("config.url", I)},
		{name: "url control", category: http, raw: `{"url":"https://e.com/\u0000"}`, errs: bad("config.url", I)},
		{name: "url variable with space", category: http, raw: `{"url":"$VAR x"}`, errs: bad("config.url", I)},

		// http headers.
		{
			name: "headers", category: http,
			raw:  `{"headers":{"b-Head":{"value":"v1"},"A-Head":{"value":"v2 \tcafé","active":false},"a-tail":{"value":"","active":true},"Content-Type":{"value":"application/json","active":null}},"url":"https://e.com"}`,
			want: httpOnly,
			headers: []destination.Header{
				{Name: "A-Head", Value: "v2 \tcafé", Active: false},
				{Name: "a-tail", Value: "", Active: true},
				{Name: "b-Head", Value: "v1", Active: true},
				{Name: "Content-Type", Value: "application/json", Active: true},
			},
		},
		{name: "headers empty", category: http, raw: `{"url":"https://e.com","headers":{}}`, want: httpOnly},
		{name: "headers null", category: http, raw: `{"url":"https://e.com","headers":null}`, want: httpOnly},
		{name: "headers 20", category: http, raw: `{"url":"https://e.com","headers":` + headersJSON(20) + `}`, want: httpOnly, headers: func() []destination.Header {
			var hs []destination.Header
			for i := 1; i <= 20; i++ {
				hs = append(hs, destination.Header{Name: fmt.Sprintf("H%02d", i), Value: fmt.Sprintf("v%d", i), Active: true})
			}
			return hs
		}()},
		{name: "headers 21", category: http, raw: `{"url":"https://e.com","headers":` + headersJSON(21) + `}`,
			errs: []problem{{"config.headers", destination.CodeTooMany, 20}}},
		{name: "headers array", category: http, raw: `{"url":"https://e.com","headers":[]}`, errs: bad("config.headers", W)},
		{name: "header name 255", category: http, raw: header(`"`+name255+`"`, `{"value":"v"}`), want: httpOnly,
			headers: []destination.Header{{Name: name255, Value: "v", Active: true}}},
		{name: "header name 256", category: http, raw: header(`"`+name255+`N"`, `{"value":"v"}`), errs: bad("config.headers", I)},
		{name: "header name space", category: http, raw: header(`"Bad Name"`, `{"value":"v"}`), errs: bad("config.headers", I)},
		{name: "header name colon", category: http, raw: header(`"X-A:"`, `{"value":"v"}`), errs: bad("config.headers", I)},
		{name: "header name empty", category: http, raw: header(`""`, `{"value":"v"}`), errs: bad("config.headers", I)},
		{name: "header token", category: http, raw: header(`"x-gitlab-event-streaming-token"`, `{"value":"v"}`),
			errs: bad("config.headers.x-gitlab-event-streaming-token", destination.CodeReservedHeader)},
		{name: "header duplicate ignoring case", category: http, raw: `{"url":"https://e.com","headers":{"X-A":{"value":"1"},"x-a":{"value":"2"}}}`,
			errs: bad("config.headers.x-a", I)},
		{name: "header duplicate key", category: http, raw: `{"url":"https://e.com","headers":{"X-A":{"value":"1"},"X-A":{"value":"2"}}}`,
			errs: bad("config.headers.X-A", I)},
		{name: "header entry string", category: http, raw: header(`"X-A"`, `"v"`), errs: bad("config.headers.X-A", W)},
		{name: "header entry extra key", category: http, raw: header(`"X-A"`, `{"value":"v","secret":true}`), errs: bad("config.headers.X-A.secret", U)},
		{name: "header value missing", category: http, raw: header(`"X-A"`, `{"active":true}`), errs: bad("config.headers.X-A.value", R)},
		{name: "header value null", category: http, raw: header(`"X-A"`, `{"value":null}`), errs: bad("config.headers.X-A.value", R)},
		{name: "header value number", category: http, raw: header(`"X-A"`, `{"value":1}`), errs: bad("config.headers.X-A.value", W)},
		{name: "header value 255", category: http, raw: header(`"X-A"`, `{"value":"`+rep("v", 255)+`"}`), want: httpOnly,
			headers: []destination.Header{{Name: "X-A", Value: rep("v", 255), Active: true}}},
		{name: "header value 256", category: http, raw: header(`"X-A"`, `{"value":"`+secretMarker+rep("v", 256-len(secretMarker))+`"}`),
			errs: []problem{{"config.headers.X-A.value", TL, 255}}},
		{name: "header value newline", category: http, raw: header(`"X-A"`, `{"value":"`+secretMarker+`\r\nX-B: 1"}`), errs: bad("config.headers.X-A.value", I)},
		{name: "header value leading space", category: http, raw: header(`"X-A"`, `{"value":" `+secretMarker+`"}`), errs: bad("config.headers.X-A.value", I)},
		{name: "header value trailing tab", category: http, raw: header(`"X-A"`, `{"value":"`+secretMarker+`\t"}`), errs: bad("config.headers.X-A.value", I)},
		{name: "header value not Latin-1", category: http, raw: header(`"X-A"`, `{"value":"`+secretMarker+`€"}`), errs: bad("config.headers.X-A.value", I)},
		{name: "header value NUL", category: http, raw: header(`"X-A"`, `{"value":"`+secretMarker+`\u0000x"}`), errs: bad("config.headers.X-A.value", I)},
		{name: "header value only space", category: http, raw: header(`"X-A"`, `{"value":" "}`), errs: bad("config.headers.X-A.value", I)},
		{name: "header active string", category: http, raw: header(`"X-A"`, `{"value":"v","active":"yes"}`), errs: bad("config.headers.X-A.active", W)},
		{
			name: "every problem at once", category: http,
			raw: `{"url":"ftp://e.com","extra":1,"headers":{"Host":{"value":"h"},"X-A":{"value":1,"active":1},"bad name":{}},"batch":{"maxEvents":0}}`,
			errs: []problem{
				{"config.extra", U, 0}, {"config.url", I, 0}, {"config.headers.Host", destination.CodeReservedHeader, 0},
				{"config.headers.X-A.value", W, 0}, {"config.headers.X-A.active", W, 0}, {"config.headers", I, 0},
				{"config.batch.maxEvents", I, 0},
			},
		},

		// batch, on every category.
		{name: "batch defaults", category: http, raw: `{"batch":{},"url":"https://e.com"}`, want: `{"url":"https://e.com","batch":` + batchWant + `}`},
		{name: "batch null", category: http, raw: `{"batch":null,"url":"https://e.com"}`, want: httpOnly},
		{name: "batch lows", category: http, raw: `{"url":"https://e.com","batch":{"maxEvents":1,"maxBytes":1024,"maxWaitMs":0}}`,
			want: `{"url":"https://e.com","batch":{"maxBytes":1024,"maxEvents":1,"maxWaitMs":0}}`},
		{name: "batch highs", category: aws, raw: `{` + awsBase + `,"batch":{"maxEvents":10000,"maxBytes":26214400,"maxWaitMs":60000}}`,
			want: `{"accessKeyXid":"AKIAIOSFODNN7EXAMPLE","awsRegion":"us-east-1","batch":{"maxBytes":26214400,"maxEvents":10000,"maxWaitMs":60000},"bucketName":"my-bucket"}`},
		{name: "batch negative zero", category: gcs, raw: `{"bucketName":"abc","batch":{"maxWaitMs":-0}}`,
			want: `{"batch":{"maxBytes":1048576,"maxEvents":100,"maxWaitMs":0},"bucketName":"abc"}`},
		{name: "batch below", category: http, raw: `{"url":"https://e.com","batch":{"maxEvents":0,"maxBytes":1023,"maxWaitMs":-1}}`,
			errs: []problem{{"config.batch.maxEvents", I, 0}, {"config.batch.maxBytes", I, 0}, {"config.batch.maxWaitMs", I, 0}}},
		{name: "batch above", category: http, raw: `{"url":"https://e.com","batch":{"maxEvents":10001,"maxBytes":26214401,"maxWaitMs":60001}}`,
			errs: []problem{{"config.batch.maxEvents", I, 0}, {"config.batch.maxBytes", I, 0}, {"config.batch.maxWaitMs", I, 0}}},
		{name: "batch out of int64", category: http, raw: `{"url":"https://e.com","batch":{"maxEvents":99999999999999999999}}`,
			errs: bad("config.batch.maxEvents", I)},
		{name: "batch fraction", category: http, raw: `{"url":"https://e.com","batch":{"maxEvents":1.5}}`, errs: bad("config.batch.maxEvents", W)},
		{name: "batch point zero", category: http, raw: `{"url":"https://e.com","batch":{"maxEvents":1.0}}`, errs: bad("config.batch.maxEvents", W)},
		{name: "batch exponent", category: http, raw: `{"url":"https://e.com","batch":{"maxEvents":1e2}}`, errs: bad("config.batch.maxEvents", W)},
		{name: "batch string", category: http, raw: `{"url":"https://e.com","batch":{"maxEvents":"10"}}`, errs: bad("config.batch.maxEvents", W)},
		{name: "batch not object", category: gcp, raw: `{` + gcpBase + `,"batch":true}`, errs: bad("config.batch", W)},
		{name: "batch unknown key", category: splunk, raw: `{"url":"https://s.com","batch":{"ordered":true}}`, errs: bad("config.batch.ordered", U)},

		// aws.
		{name: "valid", category: aws, raw: `{` + awsBase + `}`, want: awsWant},
		{name: "region stripped", category: aws, raw: `{"awsRegion":" \teu-central-1\n","accessKeyXid":"AKIAIOSFODNN7EXAMPLE","bucketName":"my-bucket"}`,
			want: `{"accessKeyXid":"AKIAIOSFODNN7EXAMPLE","awsRegion":"eu-central-1","bucketName":"my-bucket"}`},
		{name: "s3-compatible", category: aws, raw: `{` + awsBase + `,"endpoint":"https://minio.local:9000","pathStyle":true}`,
			want: `{"accessKeyXid":"AKIAIOSFODNN7EXAMPLE","awsRegion":"us-east-1","bucketName":"my-bucket","endpoint":"https://minio.local:9000","pathStyle":true}`},
		{name: "endpoint empty, pathStyle false", category: aws, raw: `{` + awsBase + `,"endpoint":"","pathStyle":false}`,
			want: `{"accessKeyXid":"AKIAIOSFODNN7EXAMPLE","awsRegion":"us-east-1","bucketName":"my-bucket","pathStyle":false}`},
		{name: "missing all", category: aws, raw: `{}`,
			errs: []problem{{"config.accessKeyXid", R, 0}, {"config.bucketName", R, 0}, {"config.awsRegion", R, 0}}},
		{name: "access key 16 and 128", category: aws, raw: `{"accessKeyXid":"` + rep("A", 16) + `","bucketName":"abc","awsRegion":"x"}`,
			want: `{"accessKeyXid":"AAAAAAAAAAAAAAAA","awsRegion":"x","bucketName":"abc"}`},
		{name: "access key 15", category: aws, raw: `{"accessKeyXid":"` + rep("A", 15) + `","bucketName":"abc","awsRegion":"x"}`,
			errs: []problem{{"config.accessKeyXid", TS, 16}}},
		{name: "access key 129", category: aws, raw: `{"accessKeyXid":"` + rep("A", 129) + `","bucketName":"abc","awsRegion":"x"}`,
			errs: []problem{{"config.accessKeyXid", TL, 128}}},
		{name: "access key dash", category: aws, raw: `{"accessKeyXid":"AKIA-IOSFODNN7EXAMPLE","bucketName":"abc","awsRegion":"x"}`,
			errs: bad("config.accessKeyXid", I)},
		{name: "bucket 63", category: aws, raw: `{"accessKeyXid":"AKIAIOSFODNN7EXAMPLE","bucketName":"` + rep("b", 63) + `","awsRegion":"x"}`,
			want: `{"accessKeyXid":"AKIAIOSFODNN7EXAMPLE","awsRegion":"x","bucketName":"` + rep("b", 63) + `"}`},
		{name: "bucket 2", category: aws, raw: `{"accessKeyXid":"AKIAIOSFODNN7EXAMPLE","bucketName":"ab","awsRegion":"x"}`,
			errs: []problem{{"config.bucketName", TS, 3}}},
		{name: "bucket 64", category: aws, raw: `{"accessKeyXid":"AKIAIOSFODNN7EXAMPLE","bucketName":"` + rep("b", 64) + `","awsRegion":"x"}`,
			errs: []problem{{"config.bucketName", TL, 63}}},
		{name: "bucket leading dash", category: aws, raw: `{"accessKeyXid":"AKIAIOSFODNN7EXAMPLE","bucketName":"-bucket","awsRegion":"x"}`,
			errs: bad("config.bucketName", I)},
		{name: "bucket upper case", category: aws, raw: `{"accessKeyXid":"AKIAIOSFODNN7EXAMPLE","bucketName":"My-Bucket","awsRegion":"x"}`,
			errs: bad("config.bucketName", I)},
		{name: "region blank", category: aws, raw: `{"accessKeyXid":"AKIAIOSFODNN7EXAMPLE","bucketName":"abc","awsRegion":"  "}`,
			errs: bad("config.awsRegion", R)},
		{name: "region underscore", category: aws, raw: `{"accessKeyXid":"AKIAIOSFODNN7EXAMPLE","bucketName":"abc","awsRegion":"us_east_1"}`,
			errs: bad("config.awsRegion", I)},
		{name: "region upper case", category: aws, raw: `{"accessKeyXid":"AKIAIOSFODNN7EXAMPLE","bucketName":"abc","awsRegion":"US-EAST-1"}`,
			errs: bad("config.awsRegion", I)},
		{name: "region trailing dash", category: aws, raw: `{"accessKeyXid":"AKIAIOSFODNN7EXAMPLE","bucketName":"abc","awsRegion":"us-east-"}`,
			errs: bad("config.awsRegion", I)},
		{name: "region inner space", category: aws, raw: `{"accessKeyXid":"AKIAIOSFODNN7EXAMPLE","bucketName":"abc","awsRegion":"us east"}`,
			errs: bad("config.awsRegion", I)},
		{name: "region 51", category: aws, raw: `{"accessKeyXid":"AKIAIOSFODNN7EXAMPLE","bucketName":"abc","awsRegion":"` + rep("a", 51) + `"}`,
			errs: []problem{{"config.awsRegion", TL, 50}}},
		{name: "endpoint not URL", category: aws, raw: `{` + awsBase + `,"endpoint":"minio:9000"}`, errs: bad("config.endpoint", I)},
		{name: "endpoint variable", category: aws, raw: `{` + awsBase + `,"endpoint":"$S3"}`, errs: bad("config.endpoint", I)},
		{name: "pathStyle string", category: aws, raw: `{` + awsBase + `,"pathStyle":"true"}`, errs: bad("config.pathStyle", W)},
		{name: "secret in config", category: aws, raw: `{` + awsBase + `,"secretAccessKey":"` + secretMarker + `"}`, errs: bad("config.secretAccessKey", U)},
		{name: "wrong types", category: aws, raw: `{"accessKeyXid":1,"bucketName":true,"awsRegion":{}}`,
			errs: []problem{{"config.accessKeyXid", W, 0}, {"config.bucketName", W, 0}, {"config.awsRegion", W, 0}}},

		// gcp.
		{name: "valid", category: gcp, raw: `{` + gcpBase + `}`, want: gcpWant},
		{name: "log id null", category: gcp, raw: `{` + gcpBase + `,"logIdName":null}`, want: gcpWant},
		{name: "log id empty", category: gcp, raw: `{` + gcpBase + `,"logIdName":""}`, want: gcpWant},
		{name: "log id blank", category: gcp, raw: `{` + gcpBase + `,"logIdName":" \t"}`, want: gcpWant},
		{name: "log id", category: gcp, raw: `{` + gcpBase + `,"logIdName":"audit/events.v1_x-y"}`,
			want: `{"clientEmail":"sa@my-project-1.iam.gserviceaccount.com","googleProjectIdName":"my-project-1","logIdName":"audit/events.v1_x-y"}`},
		{name: "log id 511", category: gcp, raw: `{` + gcpBase + `,"logIdName":"` + rep("l", 511) + `"}`,
			want: `{"clientEmail":"sa@my-project-1.iam.gserviceaccount.com","googleProjectIdName":"my-project-1","logIdName":"` + rep("l", 511) + `"}`},
		{name: "log id 512", category: gcp, raw: `{` + gcpBase + `,"logIdName":"` + rep("l", 512) + `"}`, errs: []problem{{"config.logIdName", TL, 511}}},
		{name: "log id space", category: gcp, raw: `{` + gcpBase + `,"logIdName":"audit events"}`, errs: bad("config.logIdName", I)},
		{name: "log id number", category: gcp, raw: `{` + gcpBase + `,"logIdName":7}`, errs: bad("config.logIdName", W)},
		{name: "missing all", category: gcp, raw: `{}`, errs: []problem{{"config.googleProjectIdName", R, 0}, {"config.clientEmail", R, 0}}},
		{name: "project 6 and 30", category: gcp, raw: `{"googleProjectIdName":"abcdef","clientEmail":"a@b"}`,
			want: `{"clientEmail":"a@b","googleProjectIdName":"abcdef","logIdName":"audit-events"}`},
		{name: "project 5", category: gcp, raw: `{"googleProjectIdName":"abcde","clientEmail":"a@b"}`, errs: []problem{{"config.googleProjectIdName", TS, 6}}},
		{name: "project 31", category: gcp, raw: `{"googleProjectIdName":"` + rep("a", 31) + `","clientEmail":"a@b"}`,
			errs: []problem{{"config.googleProjectIdName", TL, 30}}},
		{name: "project digit first", category: gcp, raw: `{"googleProjectIdName":"1project","clientEmail":"a@b"}`, errs: bad("config.googleProjectIdName", I)},
		{name: "project dash last", category: gcp, raw: `{"googleProjectIdName":"project-","clientEmail":"a@b"}`, errs: bad("config.googleProjectIdName", I)},
		{name: "project upper case", category: gcp, raw: `{"googleProjectIdName":"My-project","clientEmail":"a@b"}`, errs: bad("config.googleProjectIdName", I)},
		{name: "email no at", category: gcp, raw: `{"googleProjectIdName":"abcdef","clientEmail":"no-at"}`, errs: bad("config.clientEmail", I)},
		{name: "email two ats", category: gcp, raw: `{"googleProjectIdName":"abcdef","clientEmail":"a@b@c"}`, errs: bad("config.clientEmail", I)},
		{name: "email no local", category: gcp, raw: `{"googleProjectIdName":"abcdef","clientEmail":"@b"}`, errs: bad("config.clientEmail", I)},
		{name: "email no domain", category: gcp, raw: `{"googleProjectIdName":"abcdef","clientEmail":"a@"}`, errs: bad("config.clientEmail", I)},
		{name: "email space", category: gcp, raw: `{"googleProjectIdName":"abcdef","clientEmail":"a b@c"}`, errs: bad("config.clientEmail", I)},
		{name: "email 254", category: gcp, raw: `{"googleProjectIdName":"abcdef","clientEmail":"a@` + rep("d", 252) + `"}`,
			want: `{"clientEmail":"a@` + rep("d", 252) + `","googleProjectIdName":"abcdef","logIdName":"audit-events"}`},
		{name: "email 255", category: gcp, raw: `{"googleProjectIdName":"abcdef","clientEmail":"a@` + rep("d", 253) + `"}`,
			errs: []problem{{"config.clientEmail", TL, 254}}},
		{name: "private key in config", category: gcp, raw: `{` + gcpBase + `,"privateKey":"x"}`, errs: bad("config.privateKey", U)},

		// gcs.
		{name: "valid", category: gcs, raw: `{"prefix":"gitlab/audit","bucketName":"audit_logs.2024"}`,
			want: `{"bucketName":"audit_logs.2024","prefix":"gitlab/audit"}`},
		{name: "prefix empty", category: gcs, raw: `{"bucketName":"abc","prefix":""}`, want: `{"bucketName":"abc"}`},
		{name: "prefix dots in a name", category: gcs, raw: `{"bucketName":"abc","prefix":"a/..b/c.."}`, want: `{"bucketName":"abc","prefix":"a/..b/c.."}`},
		{name: "prefix 512", category: gcs, raw: `{"bucketName":"abc","prefix":"` + rep("p", 512) + `"}`, want: `{"bucketName":"abc","prefix":"` + rep("p", 512) + `"}`},
		{name: "prefix 513", category: gcs, raw: `{"bucketName":"abc","prefix":"` + rep("p", 513) + `"}`, errs: []problem{{"config.prefix", TL, 512}}},
		{name: "prefix leading slash", category: gcs, raw: `{"bucketName":"abc","prefix":"/audit"}`, errs: bad("config.prefix", I)},
		{name: "prefix dot dot", category: gcs, raw: `{"bucketName":"abc","prefix":"a/../b"}`, errs: bad("config.prefix", I)},
		{name: "prefix only dot dot", category: gcs, raw: `{"bucketName":"abc","prefix":".."}`, errs: bad("config.prefix", I)},
		{name: "prefix control", category: gcs, raw: `{"bucketName":"abc","prefix":"a\nb"}`, errs: bad("config.prefix", I)},
		{name: "bucket missing", category: gcs, raw: `{"prefix":"x"}`, errs: bad("config.bucketName", R)},
		{name: "bucket goog", category: gcs, raw: `{"bucketName":"goog-logs"}`, errs: bad("config.bucketName", I)},
		{name: "bucket 2", category: gcs, raw: `{"bucketName":"ab"}`, errs: []problem{{"config.bucketName", TS, 3}}},
		{name: "bucket 64", category: gcs, raw: `{"bucketName":"` + rep("b", 64) + `"}`, errs: []problem{{"config.bucketName", TL, 63}}},
		{name: "bucket trailing dash", category: gcs, raw: `{"bucketName":"bucket-"}`, errs: bad("config.bucketName", I)},
		{name: "bucket leading underscore", category: gcs, raw: `{"bucketName":"_bucket"}`, errs: bad("config.bucketName", I)},
		{name: "bucket upper case", category: gcs, raw: `{"bucketName":"Bucket"}`, errs: bad("config.bucketName", I)},

		// splunk.
		{
			name: "valid", category: splunk,
			raw:  `{"sourcetype":"gitlab:audit","url":"https://splunk.example.com:8088","index":"main","host":"gitlab example","source":"auditstream","ack":true}`,
			want: `{"url":"https://splunk.example.com:8088","ack":true,"host":"gitlab example","index":"main","source":"auditstream","sourcetype":"gitlab:audit"}`,
		},
		{name: "url only", category: splunk, raw: `{"url":"http://splunk:8088","index":"","ack":false}`, want: `{"url":"http://splunk:8088","ack":false}`},
		{name: "url missing", category: splunk, raw: `{"index":"main"}`, errs: bad("config.url", R)},
		{name: "url variable", category: splunk, raw: `{"url":"$SPLUNK"}`, errs: bad("config.url", I)},
		{name: "index 256", category: splunk, raw: `{"url":"https://s.com","index":"` + rep("i", 256) + `"}`, errs: []problem{{"config.index", TL, 255}}},
		{name: "source tab", category: splunk, raw: `{"url":"https://s.com","source":"a\tb"}`, errs: bad("config.source", I)},
		{name: "ack string", category: splunk, raw: `{"url":"https://s.com","ack":"no"}`, errs: bad("config.ack", W)},
		{name: "token in config", category: splunk, raw: `{"url":"https://s.com","token":"x"}`, errs: bad("config.token", U)},
	}
	return cases
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, tc := range configCases() {
		name := tc.category + "/" + tc.name
		require.False(t, seen[name], "duplicate case name %s", name)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg, err := registry.ParseConfig(tc.category, []byte(tc.raw))
			if tc.errs != nil {
				require.Error(t, err)
				require.ElementsMatch(t, tc.errs, problems(err), "%v", err)
				require.Zero(t, cfg)
				require.NotContains(t, err.Error(), secretMarker)
				for _, e := range destination.ConfigErrors(err) {
					require.NotEmpty(t, e.Message)
					require.True(t, strings.HasPrefix(e.Error(), e.Field+": "), e.Error())
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.category, cfg.Category)
			require.Equal(t, tc.want, string(cfg.JSON))
			require.Equal(t, tc.headers, cfg.Headers)
			requireRoundTrip(t, cfg)
		})
	}
}

// requireRoundTrip checks that the API view of cfg parses back to cfg, and that the stored
// JSON parses back to itself.
func requireRoundTrip(t *testing.T, cfg destination.Config) {
	t.Helper()
	view := destination.ConfigWithHeaders(cfg.Category, cfg.JSON, cfg.Headers)
	again, err := registry.ParseConfig(cfg.Category, view)
	require.NoError(t, err, "view %s", view)
	require.Equal(t, cfg, again, "view %s", view)
	stored, err := registry.ParseConfig(cfg.Category, cfg.JSON)
	require.NoError(t, err)
	require.Equal(t, string(cfg.JSON), string(stored.JSON))
	require.Nil(t, stored.Headers)
}

func TestConfigWithHeaders(t *testing.T) {
	t.Parallel()
	raw := `{"headers":{"b-Head":{"value":"v1"},"A-Head":{"value":"a&b","active":false}},"batch":{"maxEvents":5},"url":"https://e.com/?a=1&b=2"}`
	cfg, err := registry.ParseConfig(destination.CategoryHTTP, []byte(raw))
	require.NoError(t, err)
	require.Equal(t, `{"url":"https://e.com/?a=1&b=2","batch":{"maxBytes":1048576,"maxEvents":5,"maxWaitMs":1000}}`, string(cfg.JSON))
	want := `{"url":"https://e.com/?a=1&b=2","batch":{"maxBytes":1048576,"maxEvents":5,"maxWaitMs":1000},` +
		`"headers":{"A-Head":{"value":"a&b","active":false},"b-Head":{"value":"v1","active":true}}}`
	require.Equal(t, want, string(destination.ConfigWithHeaders(cfg.Category, cfg.JSON, cfg.Headers)))
	requireRoundTrip(t, cfg)

	t.Run("sorts the headers", func(t *testing.T) {
		t.Parallel()
		reversed := []destination.Header{cfg.Headers[1], cfg.Headers[0]}
		require.Equal(t, want, string(destination.ConfigWithHeaders(cfg.Category, cfg.JSON, reversed)))
		require.Equal(t, "b-Head", reversed[0].Name, "the caller's slice is not reordered")
	})
	t.Run("replaces stored headers", func(t *testing.T) {
		t.Parallel()
		stored := []byte(`{ "headers": {"Old": {"value": "x"}}, "url": "https://e.com" }`)
		got := destination.ConfigWithHeaders(destination.CategoryHTTP, stored, []destination.Header{{Name: "New", Value: "y", Active: true}})
		require.Equal(t, `{"url":"https://e.com","headers":{"New":{"value":"y","active":true}}}`, string(got))
		got = destination.ConfigWithHeaders(destination.CategoryHTTP, stored, nil)
		require.Equal(t, httpOnly, string(got))
	})
	t.Run("other categories unchanged", func(t *testing.T) {
		t.Parallel()
		stored := []byte(awsWant)
		got := destination.ConfigWithHeaders(destination.CategoryAWS, stored, []destination.Header{{Name: "X", Value: "y"}})
		require.Equal(t, awsWant, string(got))
	})
	t.Run("not an object unchanged", func(t *testing.T) {
		t.Parallel()
		for _, stored := range []string{``, `null`, `[1]`, `{`} {
			got := destination.ConfigWithHeaders(destination.CategoryHTTP, []byte(stored), []destination.Header{{Name: "X", Value: "y"}})
			require.Equal(t, stored, string(got))
		}
	})
}

func TestCategories(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"http", "aws", "gcp", "gcs", "splunk", "kafka", "syslog", "datadog"}, registry.Categories())
	c := registry.Categories()
	c[0] = "changed"
	require.Equal(t, "http", registry.Categories()[0])
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	_, err := registry.ParseConfig(destination.CategoryHTTP, []byte(`{"a":1,"b":2}`))
	wrapped := fmt.Errorf("saving destination: %w", err)
	require.Equal(t, []problem{{"config.a", "unknown_field", 0}, {"config.b", "unknown_field", 0}, {"config.url", "required", 0}},
		problems(wrapped))
	var ce *destination.ConfigError
	require.ErrorAs(t, wrapped, &ce)
	require.Equal(t, "config.a", ce.Field)
	require.Nil(t, destination.ConfigErrors(nil))
	require.Nil(t, destination.ConfigErrors(errors.New("other")))

	require.Equal(t, "config.url: must be at most 255 characters long",
		(&destination.ConfigError{Field: "config.url", Code: "too_long", Message: "must be at most 255 characters long", Limit: 255}).Error())
	require.Equal(t, "name: required", (&destination.ConfigError{Field: "name", Code: "required"}).Error())
}

func TestParseConfigBoundsTheErrorList(t *testing.T) {
	t.Parallel()
	var keys []string
	for i := range 60 {
		keys = append(keys, fmt.Sprintf(`"k%d":1`, i))
	}
	_, err := registry.ParseConfig(destination.CategoryGCS, []byte(`{`+strings.Join(keys, ",")+`}`))
	ps := problems(err)
	require.Len(t, ps, 51)
	require.Equal(t, problem{"config.k0", "unknown_field", 0}, ps[0])
	require.Equal(t, problem{"config", "too_many", 50}, ps[50])
	require.Contains(t, err.Error(), "has 11 more problems")
}

func TestReservedHeaders(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		"X-Gitlab-Event-Streaming-Token", "X-GITLAB-EVENT-STREAMING-TOKEN", "X-Gitlab-Audit-Event-Type",
		"webhook-id", "Webhook-Timestamp", "WEBHOOK-SIGNATURE", "content-length", "Host", "transfer-encoding", "Connection",
	} {
		_, err := registry.ParseConfig(destination.CategoryHTTP, []byte(header(`"`+name+`"`, `{"value":"v"}`)))
		require.Equal(t, bad("config.headers."+name, destination.CodeReservedHeader), problems(err), name)
	}
	for _, name := range []string{"Content-Type", "Authorization", "X-Gitlab-Event-Streaming-Token2", "webhook"} {
		_, err := registry.ParseConfig(destination.CategoryHTTP, []byte(header(`"`+name+`"`, `{"value":"v"}`)))
		require.NoError(t, err, name)
	}
}

func TestHeaderDoesNotPrintItsValue(t *testing.T) {
	t.Parallel()
	cfg, err := registry.ParseConfig(destination.CategoryHTTP, []byte(header(`"Authorization"`, `{"value":"Bearer `+secretMarker+`","active":false}`)))
	require.NoError(t, err)
	require.Equal(t, "Bearer "+secretMarker, cfg.Headers[0].Value)
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, cfg)
		require.NotContains(t, out, secretMarker, format)
		require.Contains(t, out, "Authorization", format)
	}
	require.Equal(t, "Authorization: [redacted] (inactive)", cfg.Headers[0].String())
	require.Equal(t, "X: [redacted]", destination.Header{Name: "X", Value: "v", Active: true}.String())
}

// Test keys, made once: generating an RSA key takes a while.
var testKeys = sync.OnceValue(func() (k struct{ pkcs8, pkcs1, ec string }) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err)
	}
	k.pkcs8 = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	k.pkcs1 = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	der, err = x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		panic(err)
	}
	k.ec = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	return k
})

// keyFile returns a service-account JSON key file with fields changed by edit.
func keyFile(t *testing.T, edit func(map[string]any)) string {
	t.Helper()
	m := map[string]any{
		"type": "service_account", "project_id": "my-project-1", "private_key_id": "0123abcd",
		"private_key": testKeys().pkcs8, "client_email": "sa@my-project-1.iam.gserviceaccount.com",
		"client_id": "1234567890", "token_uri": "https://oauth2.googleapis.com/token",
	}
	if edit != nil {
		edit(m)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	require.NoError(t, err)
	return string(b)
}

// requireNoLeak fails when msg holds the secret or any long piece of it (a PEM line, a token).
func requireNoLeak(t *testing.T, msg, secret string) {
	t.Helper()
	require.NotContains(t, msg, secretMarker)
	if len(secret) >= 4 {
		require.NotContains(t, msg, secret)
	}
	for _, piece := range strings.Fields(secret) {
		if len(piece) >= 12 {
			require.NotContains(t, msg, piece)
		}
	}
}

func TestValidateSecret(t *testing.T) {
	t.Parallel()
	const (
		http, aws, gcp, gcs, splunk = destination.CategoryHTTP, destination.CategoryAWS, destination.CategoryGCP,
			destination.CategoryGCS, destination.CategorySplunk
		R, I, TL = destination.CodeRequired, destination.CodeInvalid, destination.CodeTooLong
	)
	k := testKeys()
	escaped := strings.ReplaceAll(strings.TrimSpace(k.pkcs8), "\n", `\n`)
	corrupt := strings.Replace(k.pkcs8, "\n", "\n"+secretMarker[:8], 1) // 8 base64 characters: a PEM block that is not a key
	encrypted := string(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte(secretMarker)}))
	legacyEncrypted := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte(secretMarker)}))
	cert := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte(secretMarker)}))
	tests := []struct {
		name, category, secret string
		code                   string // "" when valid
		limit                  int
		msg                    string // part of the message, when given
	}{
		{name: "http empty", category: http, secret: ""},
		{name: "http token", category: http, secret: "tok " + secretMarker + " "},
		{name: "http 4096", category: http, secret: rep("é", 4096)},
		{name: "http 4097", category: http, secret: secretMarker + rep("t", 4097-len(secretMarker)), code: TL, limit: 4096},
		{name: "http control", category: http, secret: secretMarker + "\x00", code: I},
		{name: "http tab", category: http, secret: secretMarker + "\tx", code: I},
		{name: "http not UTF-8", category: http, secret: secretMarker + "\xff", code: I},

		{name: "aws key", category: aws, secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + secretMarker},
		{name: "aws empty", category: aws, secret: "", code: R},
		{name: "aws 128", category: aws, secret: rep("k", 128)},
		{name: "aws 129", category: aws, secret: secretMarker + rep("k", 129-len(secretMarker)), code: TL, limit: 128},
		{name: "aws space", category: aws, secret: secretMarker + " x", code: I},
		{name: "aws newline", category: aws, secret: secretMarker + "\n", code: I},

		{name: "gcp pkcs8", category: gcp, secret: k.pkcs8},
		{name: "gcp pkcs8 with spaces around", category: gcp, secret: "\n  " + k.pkcs8 + "\n\n"},
		{name: "gcp pkcs1", category: gcp, secret: k.pkcs1},
		{name: "gcp empty", category: gcp, secret: "", code: R},
		{name: "gcp whole key file", category: gcp, secret: keyFile(t, nil), code: I, msg: "not the whole JSON key file"},
		{name: "gcp escaped newlines", category: gcp, secret: escaped, code: I, msg: `\n`},
		{name: "gcp not PEM, accepted as GitLab does", category: gcp, secret: "YOUR_PRIVATE_KEY"},
		{name: "gcp broken PEM", category: gcp, secret: "-----BEGIN PRIVATE KEY-----\n" + secretMarker + "\n-----END PRIVATE KEY-----\n", code: I, msg: "-----BEGIN PRIVATE KEY-----"},
		{name: "gcp two keys", category: gcp, secret: k.pkcs8 + k.pkcs1, code: I},
		{name: "gcp trailing text", category: gcp, secret: k.pkcs8 + secretMarker, code: I},
		{name: "gcp corrupt", category: gcp, secret: corrupt, code: I},
		{name: "gcp encrypted", category: gcp, secret: encrypted, code: I, msg: "unencrypted"},
		{name: "gcp legacy encrypted", category: gcp, secret: legacyEncrypted, code: I, msg: "unencrypted"},
		{name: "gcp certificate", category: gcp, secret: cert, code: I},
		{name: "gcp EC key", category: gcp, secret: k.ec, code: I, msg: "RSA"},
		{name: "gcp too long", category: gcp, secret: k.pkcs8 + rep(" ", 4096), code: TL, limit: 4096},

		{name: "gcs key file", category: gcs, secret: keyFile(t, nil)},
		{name: "gcs pkcs1 in key file", category: gcs, secret: keyFile(t, func(m map[string]any) { m["private_key"] = k.pkcs1 })},
		{name: "gcs empty", category: gcs, secret: "", code: R},
		{name: "gcs PEM only", category: gcs, secret: k.pkcs8, code: I, msg: "not only its private key"},
		{name: "gcs not JSON", category: gcs, secret: secretMarker, code: I},
		{name: "gcs array", category: gcs, secret: `["` + secretMarker + `"]`, code: I},
		{name: "gcs null", category: gcs, secret: `null`, code: I},
		{name: "gcs wrong type", category: gcs, secret: keyFile(t, func(m map[string]any) { m["type"] = "authorized_user" }), code: I, msg: `"type"`},
		{name: "gcs no email", category: gcs, secret: keyFile(t, func(m map[string]any) { delete(m, "client_email") }), code: I, msg: "client_email"},
		{name: "gcs bad email", category: gcs, secret: keyFile(t, func(m map[string]any) { m["client_email"] = secretMarker }), code: I, msg: "client_email"},
		{name: "gcs email number", category: gcs, secret: keyFile(t, func(m map[string]any) { m["client_email"] = 5 }), code: I, msg: "client_email"},
		{name: "gcs no key", category: gcs, secret: keyFile(t, func(m map[string]any) { delete(m, "private_key") }), code: I, msg: "private_key"},
		{name: "gcs bad key", category: gcs, secret: keyFile(t, func(m map[string]any) { m["private_key"] = corrupt }), code: I, msg: "private_key"},
		{name: "gcs EC key", category: gcs, secret: keyFile(t, func(m map[string]any) { m["private_key"] = k.ec }), code: I, msg: "private_key"},
		{name: "gcs too long", category: gcs, secret: keyFile(t, func(m map[string]any) { m["pad"] = rep("p", 16<<10) }), code: TL, limit: 16 << 10},

		{name: "splunk GUID", category: splunk, secret: "12345678-9abc-def0-1234-56789abcdef0"},
		{name: "splunk printable", category: splunk, secret: "tök/" + secretMarker},
		{name: "splunk empty", category: splunk, secret: "", code: R},
		{name: "splunk 256", category: splunk, secret: rep("s", 256)},
		{name: "splunk 257", category: splunk, secret: secretMarker + rep("s", 257-len(secretMarker)), code: TL, limit: 256},
		{name: "splunk space", category: splunk, secret: "Splunk " + secretMarker, code: I},
		{name: "splunk no-break space", category: splunk, secret: secretMarker + "\u00a0", code: I},
		{name: "splunk control", category: splunk, secret: secretMarker + "\x7f", code: I},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := registry.ValidateSecret(tc.category, tc.secret)
			if tc.code == "" {
				require.NoError(t, err)
				return
			}
			require.Equal(t, []problem{{"secretToken", tc.code, tc.limit}}, problems(err), "%v", err)
			require.Contains(t, err.Error(), tc.msg)
			requireNoLeak(t, err.Error(), tc.secret)
		})
	}
	t.Run("unknown category", func(t *testing.T) {
		t.Parallel()
		err := registry.ValidateSecret("ftp", secretMarker)
		require.Equal(t, bad("category", destination.CodeUnknownCategory), problems(err))
		requireNoLeak(t, err.Error(), secretMarker)
	})
}

func TestValidateVerificationToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		tok   string
		code  string
		limit int
	}{
		{tok: rep("a", 16)},
		{tok: rep("a", 24)},
		{tok: rep("é", 24)},
		{tok: rep("a", 15) + " "}, // trailing whitespace is kept and counts
		{tok: "", code: "too_short", limit: 16},
		{tok: rep("a", 15), code: "too_short", limit: 16},
		{tok: rep("a", 25), code: "too_long", limit: 24},
		{tok: rep("a", 16) + "\n", code: "invalid"},
		{tok: rep("a", 16) + "\xff", code: "invalid"},
	}
	for _, tc := range tests {
		err := destination.ValidateVerificationToken(tc.tok)
		if tc.code == "" {
			require.NoError(t, err, "%q", tc.tok)
			continue
		}
		require.Equal(t, []problem{{"verificationToken", tc.code, tc.limit}}, problems(err), "%q", tc.tok)
		if len(tc.tok) >= 4 {
			require.NotContains(t, err.Error(), tc.tok)
		}
	}
}

func TestValidateName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		code  string
		limit int
	}{
		{name: "Splunk"},
		{name: "trailing space "}, // not trimmed, as GitLab
		{name: rep("é", 72)},
		{name: "", code: "required"},
		{name: rep("n", 73), code: "too_long", limit: 72},
		{name: "a\nb", code: "invalid"},
		{name: "a\u0085b", code: "invalid"},
		{name: "a\xffb", code: "invalid"},
	}
	for _, tc := range tests {
		err := destination.ValidateName(tc.name)
		if tc.code == "" {
			require.NoError(t, err, "%q", tc.name)
			continue
		}
		require.Equal(t, []problem{{"name", tc.code, tc.limit}}, problems(err), "%q", tc.name)
	}
}

func TestDefaultName(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^Destination_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := destination.DefaultName(), destination.DefaultName()
	require.Regexp(t, re, a)
	require.Regexp(t, re, b)
	require.NotEqual(t, a, b)
	require.NoError(t, destination.ValidateName(a))
}

func TestNewVerificationToken(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^[A-Za-z0-9+/]{24}$`)
	seen := map[string]bool{}
	for range 100 {
		tok := destination.NewVerificationToken()
		require.Regexp(t, re, tok)
		require.NoError(t, destination.ValidateVerificationToken(tok))
		require.NoError(t, registry.ValidateSecret(destination.CategoryHTTP, tok))
		require.False(t, seen[tok])
		seen[tok] = true
	}
}

func TestNewSigningSecret(t *testing.T) {
	t.Parallel()
	a, b := destination.NewSigningSecret(), destination.NewSigningSecret()
	require.NotEqual(t, a, b)
	for _, s := range []string{a, b} {
		enc, ok := strings.CutPrefix(s, "whsec_")
		require.True(t, ok, s)
		raw, err := base64.StdEncoding.DecodeString(enc)
		require.NoError(t, err)
		require.Len(t, raw, 32)
	}
}

// FuzzParseConfig checks that ParseConfig never panics, that every problem it reports is a
// well-formed *ConfigError, and that what it accepts round-trips through ConfigWithHeaders.
func FuzzParseConfig(f *testing.F) {
	categories := append(registry.Categories(), "unknown")
	for _, tc := range configCases() {
		i := 0
		for j, c := range categories {
			if c == tc.category {
				i = j
			}
		}
		if len(tc.raw) < 4096 {
			f.Add(uint8(i), []byte(tc.raw))
		}
	}
	codes := map[string]bool{
		"required": true, "invalid": true, "too_long": true, "too_short": true, "too_many": true,
		"unknown_field": true, "unknown_category": true, "reserved_header": true, "wrong_type": true,
	}
	f.Fuzz(func(t *testing.T, ci uint8, raw []byte) {
		category := categories[int(ci)%len(categories)]
		cfg, err := registry.ParseConfig(category, raw)
		if err != nil {
			ps := destination.ConfigErrors(err)
			require.NotEmpty(t, ps)
			require.LessOrEqual(t, len(ps), 51)
			for _, p := range ps {
				require.NotEmpty(t, p.Field)
				require.NotEmpty(t, p.Message)
				require.True(t, codes[p.Code], p.Code)
			}
			require.Zero(t, cfg)
			return
		}
		require.Equal(t, category, cfg.Category)
		require.True(t, json.Valid(cfg.JSON), "%s", cfg.JSON)
		requireRoundTrip(t, cfg)
	})
}

// TestParseConfigTakesAJSONStringOfAnObject: config may come as a JSON string holding the
// object's JSON (GitLab's QA client sends it so; GitLab parses it); the result is the same as
// for the object. A string holding anything else is still not an object.
func TestParseConfigTakesAJSONStringOfAnObject(t *testing.T) {
	t.Parallel()
	obj := `{"url":"https://receiver.example/x","headers":{"X-A":{"value":"1","active":true}}}`
	quoted, err := json.Marshal(obj)
	require.NoError(t, err)
	want, err := registry.ParseConfig(destination.CategoryHTTP, []byte(obj))
	require.NoError(t, err)
	got, err := registry.ParseConfig(destination.CategoryHTTP, append([]byte(" "), quoted...))
	require.NoError(t, err)
	require.Equal(t, want, got)
	for _, bad := range []string{`"https://receiver.example/x"`, `"[1]"`, `"{\"url\":"`, `""`} {
		_, err := registry.ParseConfig(destination.CategoryHTTP, []byte(bad))
		require.Error(t, err, bad)
	}
}

// TestDeliveryOfFillsWhatTheAPIWould: a stored config that lacks a delivery or batch field
// (written by hand, or by a version that did not write it) is delivered as the API would have
// stored it. Before, a delivery object without concurrency sent one request at a time, and a
// batch without maxBytes one event per request.
func TestDeliveryOfFillsWhatTheAPIWould(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		`{"url":"https://example.com/a","delivery":{}}`,
		`{"url":"https://example.com/a","delivery":{"ordered":true}}`,
		`{"url":"https://example.com/a","delivery":{"bufferWhilePaused":true}}`,
		`{"url":"https://example.com/a","batch":{}}`,
		`{"url":"https://example.com/a","batch":{"maxEvents":10}}`,
		`{"url":"https://example.com/a","batch":{"maxWaitMs":0}}`,
		`{"url":"https://example.com/a","batch":{"maxBytes":4096},"delivery":{"concurrency":3}}`,
	} {
		cfg, err := registry.ParseConfig("http", []byte(raw))
		require.NoError(t, err, raw)
		require.Equal(t, destination.DeliveryOf(cfg.JSON), destination.DeliveryOf([]byte(raw)), "%s, stored by the API as %s", raw, cfg.JSON)
	}
	require.Equal(t, destination.DefaultConcurrency, destination.DeliveryOf([]byte(`{"delivery":{}}`)).Concurrency)
	b := destination.DeliveryOf([]byte(`{"batch":{"maxEvents":10}}`)).Batch
	require.Equal(t, destination.Batch{MaxEvents: 10, MaxBytes: destination.DefaultBatchMaxBytes, MaxWait: destination.DefaultBatchMaxWaitMs * time.Millisecond}, *b)
}
