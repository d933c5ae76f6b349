package format

import (
	"net/netip"
	"strconv"
	"strings"
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
	r, err := e.read(streamed)
	if err != nil {
		return dst, err
	}
	b := append(dst, "CEF:0|"+Product+"|"+Product+"|"...)
	b = appendCEFHeader(b, e.productVersion)
	b = append(b, '|')
	b = appendCEFHeader(b, r.typeName())
	b = append(b, '|')
	b = appendCEFHeader(b, r.name())
	b = append(b, '|')
	if r.failed {
		b = append(b, cefSeverityFailed...)
	} else {
		b = append(b, cefSeverity...)
	}
	b = append(b, "|rt="...)
	b = strconv.AppendInt(b, r.ev.CreatedAt.UnixMilli(), 10)
	if r.ev.ID != 0 {
		b = append(b, " externalId="...)
		b = strconv.AppendInt(b, r.ev.ID, 10)
	}
	if r.typ != nil {
		b = appendCEFPair(b, "cat", r.typ.FeatureCategory)
	}
	_, activity := r.activity()
	b = appendCEFPair(b, "act", activity)
	if r.failed {
		b = append(b, " outcome=failure"...)
	} else {
		b = append(b, " outcome=success"...)
	}
	b = appendCEFPair(b, "suser", r.ev.AuthorName)
	b = append(b, " suid="...)
	b = strconv.AppendInt(b, r.ev.AuthorID, 10)
	if a, err := netip.ParseAddr(r.ev.IPAddress); err == nil {
		// CEF's src is IPv4 only; ArcSight's convention for a source IPv6 address is c6a2.
		if a.Unmap().Is4() {
			b = appendCEFPair(b, "src", a.Unmap().String())
		} else {
			b = appendCEFPair(b, "c6a2", a.String())
			b = append(b, " c6a2Label=Source IPv6 Address"...)
		}
	}
	if r.targetIsUser() {
		b = appendCEFPair(b, "duser", r.ev.TargetDetails)
		b = appendCEFPair(b, "duid", r.targetID)
	}
	b = appendCEFPair(b, "msg", r.customMessage)
	b = appendCEFLabelled(b, "cs1", "Entity Path", r.ev.EntityPath)
	b = appendCEFLabelled(b, "cs2", "Entity Type", r.ev.EntityType)
	if r.ev.EntityID != 0 {
		b = append(b, " cn1Label=Entity ID cn1="...)
		b = strconv.AppendInt(b, r.ev.EntityID, 10)
	}
	b = appendCEFLabelled(b, "cs3", "Target Type", r.ev.TargetType)
	b = appendCEFLabelled(b, "cs4", "Target ID", r.targetID)
	b = appendCEFLabelled(b, "cs5", "Target Details", r.ev.TargetDetails)
	b = append(b, " cs6Label=Details cs6="...)
	b = appendCEFValue(b, string(r.details))
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

// appendCEFLabelled appends a custom field and its label (" keyLabel=label key=value"), unless
// value is empty.
func appendCEFLabelled(b []byte, key, label, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ' ')
	b = append(b, key...)
	b = append(b, "Label="...)
	b = append(b, label...)
	b = append(b, ' ')
	b = append(b, key...)
	b = append(b, '=')
	return appendCEFValue(b, value)
}

// appendCEFHeader appends s as a CEF header field: \ and | escaped with a backslash; CR and LF,
// which CEF allows only in extension values, become spaces.
func appendCEFHeader(b []byte, s string) []byte {
	if !strings.ContainsAny(s, "\\|\r\n") {
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
func appendCEFValue(b []byte, s string) []byte {
	if !strings.ContainsAny(s, "\\=\r\n") {
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
