package format

import (
	"strconv"

	"github.com/auditstream/auditstream/internal/event"
)

// Product is what OCSF metadata.product and the CEF header name as the source of the events.
const Product = "auditstream"

// AppendOCSF appends the event whose streaming JSON is streamed to dst as one OCSF 1.3.0 event,
// a JSON object on one line, keys in a fixed order. The class and activity come from the
// event type's ocsf mapping in the catalog (Fallback() when it has none). Every attribute the
// class requires is written; GitLab's fields with no OCSF place go under "unmapped".
func (e *Encoder) AppendOCSF(dst, streamed []byte) ([]byte, error) {
	r, err := e.read(streamed)
	if err != nil {
		return dst, err
	}
	b := dst
	c := r.class
	activityID, activityName := r.activity()

	// Classification (base_event): activity, category, class, type.
	b = append(b, `{"activity_id":`...)
	b = strconv.AppendInt(b, int64(activityID), 10)
	b = append(b, `,"activity_name":`...)
	b = event.AppendJSONString(b, activityName)
	b = append(b, `,"category_name":`...)
	b = event.AppendJSONString(b, c.CategoryName)
	b = append(b, `,"category_uid":`...)
	b = strconv.AppendInt(b, int64(c.CategoryUID), 10)
	b = append(b, `,"class_name":`...)
	b = event.AppendJSONString(b, c.Caption)
	b = append(b, `,"class_uid":`...)
	b = strconv.AppendInt(b, int64(c.UID), 10)
	b = append(b, `,"type_name":`...)
	b = event.AppendJSONString(b, c.Caption+": "+c.ActivityCaptions[activityID])
	b = append(b, `,"type_uid":`...)
	b = strconv.AppendInt(b, int64(c.UID)*100+int64(activityID), 10)

	// Audit events are records of normal operation: informational, whatever they record.
	b = append(b, `,"severity_id":1,"severity":"Informational"`...)
	if r.failed {
		b = append(b, `,"status_id":2,"status":"Failure"`...)
	} else {
		b = append(b, `,"status_id":1,"status":"Success"`...)
	}
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, r.ev.CreatedAt.UnixMilli(), 10)
	b = append(b, `,"message":`...)
	if r.customMessage != "" {
		b = event.AppendJSONString(b, r.customMessage)
	} else {
		b = event.AppendJSONString(b, r.name())
	}

	b = append(b, `,"metadata":{"version":"`+event.OCSFVersion+`"`...)
	if r.ev.ID != 0 {
		b = append(b, `,"uid":`...)
		b = appendInt64String(b, r.ev.ID)
	}
	b = append(b, `,"event_code":`...)
	b = event.AppendJSONString(b, r.typeName())
	b = append(b, `,"original_time":"`...)
	b = r.ev.CreatedAt.UTC().AppendFormat(b, event.TimeLayout)
	b = append(b, `","product":{"name":"`+Product+`","vendor_name":"`+Product+`","version":`...)
	b = event.AppendJSONString(b, e.productVersion)
	b = append(b, `}}`...)

	// The author did it: actor.user.
	b = append(b, `,"actor":{"user":`...)
	b = appendUser(b, strconv.FormatInt(r.ev.AuthorID, 10), r.ev.AuthorName, r.authorEmail)
	b = append(b, '}')
	switch {
	case r.ev.IPAddress != "":
		b = append(b, `,"src_endpoint":{"ip":`...)
		b = event.AppendJSONString(b, r.ev.IPAddress)
		b = append(b, '}')
	case c.Name == "api_activity":
		// API Activity requires src_endpoint; a producer that sent no address gets one that
		// says so rather than an event that fails validation.
		b = append(b, `,"src_endpoint":{"name":"unknown"}`...)
	}

	b = e.appendClassAttrs(b, r)

	b = append(b, `,"unmapped":{"entity_type":`...)
	b = event.AppendJSONString(b, r.ev.EntityType)
	b = append(b, `,"entity_id":`...)
	b = strconv.AppendInt(b, r.ev.EntityID, 10)
	b = append(b, `,"entity_path":`...)
	b = event.AppendJSONString(b, r.ev.EntityPath)
	b = append(b, `,"target_type":`...)
	b = event.AppendJSONString(b, r.ev.TargetType)
	b = append(b, `,"target_id":`...)
	b = event.AppendJSONString(b, r.targetID)
	b = append(b, `,"target_details":`...)
	b = event.AppendJSONString(b, r.ev.TargetDetails)
	b = append(b, `,"details":`...)
	b = append(b, r.details...)
	if p := r.ev.Producer; !p.IsZero() {
		b = append(b, `,"`+event.ProducerKey+`":{"token_id":`...)
		b = strconv.AppendInt(b, p.TokenID, 10)
		b = append(b, `,"user_id":`...)
		b = strconv.AppendInt(b, p.UserID, 10)
		b = append(b, `,"username":`...)
		b = event.AppendJSONString(b, p.Username)
		if p.Impersonation {
			b = append(b, `,"impersonation":true`...)
		}
		b = append(b, `,"via":`...)
		b = event.AppendJSONString(b, p.Via)
		b = append(b, '}')
	}
	b = append(b, `}}`...)
	return b, nil
}

// appendClassAttrs appends the attributes the event's class requires (and the recommended
// ones we can fill), from the OCSF 1.3.0 schema: testdata/ocsf-1.3.0-required.json lists them.
func (e *Encoder) appendClassAttrs(b []byte, r *record) []byte {
	switch r.class.Name {
	case "account_change":
		// The account changed: the target when it is a user, else the User entity, else the
		// author (a user changing their own account).
		b = append(b, `,"user":`...)
		switch {
		case r.targetIsUser() && r.targetID != "":
			b = appendUser(b, r.targetID, r.ev.TargetDetails, "")
		case r.ev.EntityType == event.EntityUser:
			b = appendUser(b, strconv.FormatInt(r.ev.EntityID, 10), r.ev.EntityPath, "")
		default:
			b = appendUser(b, strconv.FormatInt(r.ev.AuthorID, 10), r.ev.AuthorName, r.authorEmail)
		}
	case "authentication":
		// Who authenticated: GitLab files logins under the User entity; otherwise the author.
		b = append(b, `,"user":`...)
		if r.ev.EntityType == event.EntityUser {
			b = appendUser(b, strconv.FormatInt(r.ev.EntityID, 10), r.ev.EntityPath, "")
		} else {
			b = appendUser(b, strconv.FormatInt(r.ev.AuthorID, 10), r.ev.AuthorName, r.authorEmail)
		}
		// Authentication needs service or dst_endpoint: the application logged in to.
		b = append(b, `,"service":{"name":`...)
		b = event.AppendJSONString(b, e.serviceName)
		b = append(b, '}')
	case "entity_management":
		// The entity managed: the target, or the event's entity when there is no target.
		b = append(b, `,"entity":`...)
		b = appendTarget(b, r)
	case "group_management":
		// GitLab's groups and projects hold the memberships: the event's entity is the group.
		b = append(b, `,"group":{"uid":`...)
		b = appendInt64String(b, r.ev.EntityID)
		b = append(b, `,"name":`...)
		b = event.AppendJSONString(b, r.ev.EntityPath)
		b = append(b, `,"type":`...)
		b = event.AppendJSONString(b, r.ev.EntityType)
		b = append(b, '}')
		// Group Management needs user or privileges: the member when the target is a user;
		// otherwise (a group or project shared with a group) the target, as the party whose
		// privileges changed, under user (its type stays in unmapped.target_type).
		b = append(b, `,"user":`...)
		if r.targetID != "" || r.ev.TargetDetails != "" {
			b = appendUser(b, r.targetID, r.ev.TargetDetails, "")
		} else {
			// No target: the author changed their own membership (a request to join).
			b = appendUser(b, strconv.FormatInt(r.ev.AuthorID, 10), r.ev.AuthorName, r.authorEmail)
		}
	case "api_activity":
		b = append(b, `,"api":{"operation":`...)
		b = event.AppendJSONString(b, r.typeName())
		b = append(b, `,"service":{"name":`...)
		b = event.AppendJSONString(b, e.serviceName)
		b = append(b, `}}`...)
		b = append(b, `,"resources":[`...)
		b = appendTarget(b, r)
		b = append(b, ']')
	}
	return b
}

// appendUser appends an OCSF user object. OCSF needs a uid or a name; a user the event names
// by neither is {"name":"unknown"}, which says so instead of failing validation.
func appendUser(b []byte, uid, name, email string) []byte {
	b = append(b, '{')
	switch {
	case uid != "":
		b = append(b, `"uid":`...)
		b = event.AppendJSONString(b, uid)
		if name != "" {
			b = append(b, `,"name":`...)
			b = event.AppendJSONString(b, name)
		}
	case name != "":
		b = append(b, `"name":`...)
		b = event.AppendJSONString(b, name)
	default:
		b = append(b, `"name":"unknown"`...)
	}
	if email != "" {
		b = append(b, `,"email_addr":`...)
		b = event.AppendJSONString(b, email)
	}
	return append(b, '}')
}

// appendTarget appends the event's target as an OCSF managed entity or resource (uid, name,
// type), or its entity when it has no target.
func appendTarget(b []byte, r *record) []byte {
	uid, name, typ := r.targetID, r.ev.TargetDetails, r.ev.TargetType
	if uid == "" && name == "" {
		uid, name, typ = strconv.FormatInt(r.ev.EntityID, 10), r.ev.EntityPath, r.ev.EntityType
	}
	b = append(b, `{"uid":`...)
	b = event.AppendJSONString(b, uid)
	b = append(b, `,"name":`...)
	b = event.AppendJSONString(b, name)
	b = append(b, `,"type":`...)
	b = event.AppendJSONString(b, typ)
	return append(b, '}')
}
