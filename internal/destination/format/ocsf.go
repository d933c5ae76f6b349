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
// class requires is written; GitLab's fields with no OCSF place go under "unmapped". On error
// dst is returned unchanged.
func (e *Encoder) AppendOCSF(dst, streamed []byte) ([]byte, error) {
	var r record
	if err := e.read(streamed, &r); err != nil {
		return dst, err
	}
	b := dst
	c := r.class
	activityID := r.activityID()

	// Classification (base_event): activity, category, class, type. The captions are the
	// schema's, plain ASCII without quotes or backslashes, so they are written as they are.
	b = append(b, `{"activity_id":`...)
	b = strconv.AppendInt(b, int64(activityID), 10)
	b = append(b, `,"activity_name":`...)
	if activityID == event.OCSFOther {
		b = r.typeTok().appendJSONString(b)
	} else {
		b = append(b, '"')
		b = append(b, c.ActivityCaptions[activityID]...)
		b = append(b, '"')
	}
	b = append(b, `,"category_name":"`...)
	b = append(b, c.CategoryName...)
	b = append(b, `","category_uid":`...)
	b = strconv.AppendInt(b, int64(c.CategoryUID), 10)
	b = append(b, `,"class_name":"`...)
	b = append(b, c.Caption...)
	b = append(b, `","class_uid":`...)
	b = strconv.AppendInt(b, int64(c.UID), 10)
	b = append(b, `,"type_name":"`...)
	b = append(b, c.Caption...)
	b = append(b, ": "...)
	b = append(b, c.ActivityCaptions[activityID]...)
	b = append(b, `","type_uid":`...)
	b = strconv.AppendInt(b, int64(c.UID)*100+int64(activityID), 10)

	// Audit events are records of normal operation: informational, whatever they record.
	b = append(b, `,"severity_id":1,"severity":"Informational"`...)
	if r.failed {
		b = append(b, `,"status_id":2,"status":"Failure"`...)
	} else {
		b = append(b, `,"status_id":1,"status":"Success"`...)
	}
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, r.createdAt.UnixMilli(), 10)
	b = append(b, `,"message":`...)
	b = r.appendMessageJSON(b)

	b = append(b, `,"metadata":{"version":"`+event.OCSFVersion+`"`...)
	if r.id != 0 {
		b = append(b, `,"uid":`...)
		b = appendInt64String(b, r.id)
	}
	b = append(b, `,"event_code":`...)
	b = r.typeTok().appendJSONString(b)
	b = append(b, `,"original_time":"`...)
	b = r.createdAt.AppendFormat(b, event.TimeLayout)
	b = append(b, `","product":{"name":"`+Product+`","vendor_name":"`+Product+`","version":`...)
	b = event.AppendJSONString(b, e.productVersion)
	b = append(b, `}}`...)

	// The author did it: actor.user.
	b = append(b, `,"actor":{"user":`...)
	b = appendUserID(b, r.authorID, r.authorName, r.authorEmail)
	b = append(b, '}')
	switch {
	case !r.ip.null():
		b = append(b, `,"src_endpoint":{"ip":`...)
		b = r.ip.appendJSONString(b)
		b = append(b, '}')
	case c.Name == "api_activity":
		// API Activity requires src_endpoint; a producer that sent no address gets one that
		// says so rather than an event that fails validation.
		b = append(b, `,"src_endpoint":{"name":"unknown"}`...)
	}

	b = e.appendClassAttrs(b, &r)

	b = append(b, `,"unmapped":{"entity_type":`...)
	b = r.entityType.appendJSONString(b)
	b = append(b, `,"entity_id":`...)
	b = strconv.AppendInt(b, r.entityID, 10)
	b = append(b, `,"entity_path":`...)
	b = r.entityPath.appendJSONString(b)
	b = append(b, `,"target_type":`...)
	b = r.targetType.appendJSONString(b)
	b = append(b, `,"target_id":`...)
	b = r.targetID.appendJSONString(b)
	b = append(b, `,"target_details":`...)
	b = r.targetDetails.appendJSONString(b)
	b = append(b, `,"details":`...)
	b = append(b, r.details...)
	if r.producer != nil {
		b = append(b, `,"`+event.ProducerKey+`":`...)
		b = append(b, compact(r.producer)...)
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
		case r.targetIsUser() && !r.targetID.null():
			b = appendUser(b, r.targetID, r.targetDetails)
		case r.entityType.is(event.EntityUser):
			b = appendUserID(b, r.entityID, r.entityPath, nil)
		default:
			b = appendUserID(b, r.authorID, r.authorName, r.authorEmail)
		}
	case "authentication":
		// Who authenticated: GitLab files logins under the User entity; otherwise the author.
		b = append(b, `,"user":`...)
		if r.entityType.is(event.EntityUser) {
			b = appendUserID(b, r.entityID, r.entityPath, nil)
		} else {
			b = appendUserID(b, r.authorID, r.authorName, r.authorEmail)
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
		b = appendInt64String(b, r.entityID)
		b = append(b, `,"name":`...)
		b = r.entityPath.appendJSONString(b)
		b = append(b, `,"type":`...)
		b = r.entityType.appendJSONString(b)
		b = append(b, '}')
		// Group Management needs user or privileges: the member when the target is a user;
		// otherwise (a group or project shared with a group) the target, as the party whose
		// privileges changed, under user (its type stays in unmapped.target_type).
		b = append(b, `,"user":`...)
		if !r.targetID.null() || !r.targetDetails.null() {
			b = appendUser(b, r.targetID, r.targetDetails)
		} else {
			// No target: the author changed their own membership (a request to join).
			b = appendUserID(b, r.authorID, r.authorName, r.authorEmail)
		}
	case "api_activity":
		b = append(b, `,"api":{"operation":`...)
		b = r.typeTok().appendJSONString(b)
		b = append(b, `,"service":{"name":`...)
		b = event.AppendJSONString(b, e.serviceName)
		b = append(b, `}}`...)
		b = append(b, `,"resources":[`...)
		b = appendTarget(b, r)
		b = append(b, ']')
	}
	return b
}

// appendUserID appends an OCSF user object for a user known by id.
func appendUserID(b []byte, uid int64, name, email tok) []byte {
	b = append(b, `{"uid":`...)
	b = appendInt64String(b, uid)
	return appendUserRest(b, name, email)
}

// appendUser appends an OCSF user object for a user known by a token id and a name. OCSF needs
// a uid or a name; a user the event names by neither is {"name":"unknown"}, which says so
// instead of failing validation.
func appendUser(b []byte, uid, name tok) []byte {
	switch {
	case !uid.null():
		b = append(b, `{"uid":`...)
		b = uid.appendJSONString(b)
		return appendUserRest(b, name, nil)
	case !name.null():
		b = append(b, `{"name":`...)
		b = name.appendJSONString(b)
		return append(b, '}')
	}
	return append(b, `{"name":"unknown"}`...)
}

func appendUserRest(b []byte, name, email tok) []byte {
	if !name.null() {
		b = append(b, `,"name":`...)
		b = name.appendJSONString(b)
	}
	if !email.null() {
		b = append(b, `,"email_addr":`...)
		b = email.appendJSONString(b)
	}
	return append(b, '}')
}

// appendTarget appends the event's target as an OCSF managed entity or resource (uid, name,
// type), or its entity when it has no target.
func appendTarget(b []byte, r *record) []byte {
	if r.targetID.null() && r.targetDetails.null() {
		b = append(b, `{"uid":`...)
		b = appendInt64String(b, r.entityID)
		b = append(b, `,"name":`...)
		b = r.entityPath.appendJSONString(b)
		b = append(b, `,"type":`...)
		b = r.entityType.appendJSONString(b)
		return append(b, '}')
	}
	b = append(b, `{"uid":`...)
	b = r.targetID.appendJSONString(b)
	b = append(b, `,"name":`...)
	b = r.targetDetails.appendJSONString(b)
	b = append(b, `,"type":`...)
	b = r.targetType.appendJSONString(b)
	return append(b, '}')
}
