package format

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/auditstream/auditstream/internal/event"
)

// CEF severities (0-10; ArcSight reads 0-3 as Low, 4-6 Medium). An audit event records normal
// operation; one that records a failed attempt (a refused login) is worth a closer look.
const (
	cefSeverity       = "3"
	cefSeverityFailed = "5"
)

// AppendCEF appends the event whose streaming JSON is streamed to dst as one ArcSight CEF:0
// line (no trailing newline):
//
//	CEF:0|auditstream|auditstream|<version>|<event_type>|<type description>|<severity>|<extension>
//
// The extension's keys come in a fixed order: rt (ms since the epoch), externalId (the event
// id), cat (feature category), act (OCSF activity), outcome, suser/suid (the author), src (an
// IPv4 address) or c6a2 (IPv6), duser/duid (a target user), msg (custom_message), then the
// GitLab fields as labelled custom strings: cs1 entity path, cs2 entity type, cn1 entity id,
// cs3 target type, cs4 target id, cs5 target details, cs6 details (JSON). Empty values are
// left out. Header fields escape \ and |, and lose newlines (CEF allows none there);
// extension values escape \, = and newlines (\n, \r), so the line is always one line.
func (e *Encoder) AppendCEF(dst, streamed []byte) ([]byte, error) {
	var r record
	if err := e.read(streamed, &r); err != nil {
		return dst, err
	}
	b := append(dst, "CEF:0|"+Product+"|"+Product+"|"...)
	b = appendCEFHeader(b, e.productVersion)
	b = append(b, '|')
	b = r.typeTok().appendCEFHeader(b)
	b = append(b, '|')
	if r.typ != nil {
		b = appendCEFHeader(b, r.typ.Description)
	} else {
		b = r.typeTok().appendCEFHeader(b)
	}
	b = append(b, '|')
	if r.failed {
		b = append(b, cefSeverityFailed...)
	} else {
		b = append(b, cefSeverity...)
	}
	b = append(b, "|rt="...)
	b = strconv.AppendInt(b, r.createdAt.UnixMilli(), 10)
	if r.id != 0 {
		b = append(b, " externalId="...)
		b = strconv.AppendInt(b, r.id, 10)
	}
	if r.typ != nil {
		b = appendCEFPair(b, "cat", r.typ.FeatureCategory)
	}
	b = append(b, " act="...)
	if id := r.activityID(); id == event.OCSFOther {
		b = r.typeTok().appendCEF(b)
	} else {
		b = appendCEFValue(b, r.class.ActivityCaptions[id])
	}
	if r.failed {
		b = append(b, " outcome=failure"...)
	} else {
		b = append(b, " outcome=success"...)
	}
	b = appendCEFTok(b, "suser", r.authorName)
	b = append(b, " suid="...)
	b = strconv.AppendInt(b, r.authorID, 10)
	if !r.ip.null() {
		if a, err := netip.ParseAddr(r.ip.text()); err == nil {
			// CEF's src is IPv4 only; ArcSight's convention for a source IPv6 address is c6a2.
			if a.Unmap().Is4() {
				b = append(b, " src="...)
				b = a.Unmap().AppendTo(b)
			} else {
				b = append(b, " c6a2="...)
				b = a.AppendTo(b)
				b = append(b, " c6a2Label=Source IPv6 Address"...)
			}
		}
	}
	if r.targetIsUser() {
		b = appendCEFTok(b, "duser", r.targetDetails)
		b = appendCEFTok(b, "duid", r.targetID)
	}
	switch {
	case !r.customMessage.null():
		b = appendCEFTok(b, "msg", r.customMessage)
	case r.sentence != "":
		b = appendCEFPair(b, "msg", r.sentence)
	}
	b = appendCEFLabelled(b, "cs1", "Entity Path", r.entityPath)
	b = appendCEFLabelled(b, "cs2", "Entity Type", r.entityType)
	if r.entityID != 0 {
		b = append(b, " cn1Label=Entity ID cn1="...)
		b = strconv.AppendInt(b, r.entityID, 10)
	}
	b = appendCEFLabelled(b, "cs3", "Target Type", r.targetType)
	b = appendCEFLabelled(b, "cs4", "Target ID", r.targetID)
	b = appendCEFLabelled(b, "cs5", "Target Details", r.targetDetails)
	b = append(b, " cs6Label=Details cs6="...)
	b = appendCEFValue(b, r.details)
	return b, nil
}

// appendCEFPair appends " key=value", value escaped, unless value is empty.
func appendCEFPair(b []byte, key, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ' ')
	b = append(b, key...)
	b = append(b, '=')
	return appendCEFValue(b, value)
}

// appendCEFTok appends " key=value", value escaped, unless value is null or empty.
func appendCEFTok(b []byte, key string, value tok) []byte {
	if value.null() {
		return b
	}
	b = append(b, ' ')
	b = append(b, key...)
	b = append(b, '=')
	return value.appendCEF(b)
}

// appendCEFLabelled appends a custom field and its label (" keyLabel=label key=value"), unless
// value is null or empty.
func appendCEFLabelled(b []byte, key, label string, value tok) []byte {
	if value.null() {
		return b
	}
	b = append(b, ' ')
	b = append(b, key...)
	b = append(b, "Label="...)
	b = append(b, label...)
	b = append(b, ' ')
	b = append(b, key...)
	b = append(b, '=')
	return value.appendCEF(b)
}

// appendCEFHeader appends s as a CEF header field: \ and | escaped with a backslash; CR and LF,
// which CEF allows only in extension values, become spaces.
func appendCEFHeader[S ~string | ~[]byte](b []byte, s S) []byte {
	if !containsAny(s, "\\|\r\n") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '|':
			b = append(b, '\\', c)
		case '\r', '\n':
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendCEFValue appends s as a CEF extension value: \ and = escaped with a backslash, CR and
// LF written as \r and \n.
func appendCEFValue[S ~string | ~[]byte](b []byte, s S) []byte {
	if !containsAny(s, "\\=\r\n") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '=':
			b = append(b, '\\', c)
		case '\r':
			b = append(b, '\\', 'r')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return b
}

// containsAny reports whether s holds any of the ASCII bytes in chars.
func containsAny[S ~string | ~[]byte](s S, chars string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(chars, s[i]) >= 0 {
			return true
		}
	}
	return false
}
