// Package objectstore lays events out as objects for the object-storage destinations (Amazon
// S3 and Google Cloud Storage): GitLab's one object per event, or gzip-compressed NDJSON
// objects holding a batch each.
package objectstore

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"strconv"
	"strings"
	"sync"

	"github.com/auditstream/auditstream/internal/destination"
)

// EventKey is GitLab's key for one event's object (EE AmazonS3 destination):
// <prefix><entity_type lower-cased>/<YYYY>/<MM>/<event_type>_<id>_<created_at in epoch ms>.json.
// The id makes keys unique, so an object is never overwritten by another event; delivering an
// event again writes the same key with the same content.
func EventKey(prefix string, e destination.Event) string {
	var head struct {
		EntityType string `json:"entity_type"`
	}
	_ = json.Unmarshal(e.JSON, &head)
	t := e.CreatedAt.UTC()
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteString(strings.ToLower(head.EntityType))
	b.WriteString(t.Format("/2006/01/"))
	b.WriteString(e.Type)
	b.WriteByte('_')
	b.WriteString(strconv.FormatInt(e.ID, 10))
	b.WriteByte('_')
	b.WriteString(strconv.FormatInt(t.UnixMilli(), 10))
	b.WriteString(".json")
	return b.String()
}

// BatchKey names a batch's object so that listing a prefix lists batches in time order and no
// two batches share a key: <prefix>batches/<YYYY>/<MM>/<DD>/<HH>/<first created_at as
// 20060102T150405.000Z>_<first id>-<last id>.ndjson.gz. Delivering the same batch again writes the
// same key.
func BatchKey(prefix string, batch []destination.Event) string {
	first, last := batch[0], batch[len(batch)-1]
	t := first.CreatedAt.UTC()
	return prefix + "batches/" + t.Format("2006/01/02/15/") + t.Format("20060102T150405.000Z") + "_" +
		strconv.FormatInt(first.ID, 10) + "-" + strconv.FormatInt(last.ID, 10) + ".ndjson.gz"
}

// gzipWriters reuse compressors: a fresh gzip.Writer allocates about 800 KB.
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
	return zw
}}

// GzipNDJSON encodes a batch as gzip-compressed NDJSON: one event JSON per line, in order.
func GzipNDJSON(batch []destination.Event) []byte {
	lines := make([][]byte, len(batch))
	for i, e := range batch {
		lines[i] = e.JSON
	}
	return GzipLines(lines)
}

// GzipLines is GzipNDJSON of events already in the destination's format
// (destination.Encoding.Payloads): one per line, in order.
func GzipLines(lines [][]byte) []byte {
	var buf bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	for _, l := range lines {
		_, _ = zw.Write(l)
		_, _ = zw.Write([]byte{'\n'})
	}
	_ = zw.Close()
	return buf.Bytes()
}

// Content types of the objects.
const (
	EventContentType = "application/json"
	BatchContentType = "application/x-ndjson"
	BatchEncoding    = "gzip"
)
