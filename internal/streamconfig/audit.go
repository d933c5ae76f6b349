package streamconfig

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/store"
)

// auditKind is what a change did, before the flavor and scope pick GitLab's event type.
type auditKind int

const (
	auditNone auditKind = iota
	auditCreate
	auditUpdate
	auditDelete
	auditFiltersCreated
	auditFiltersDeleted
	auditNamespaceCreated
	auditNamespaceDeleted
	auditHeaderCreated
	auditHeaderUpdated
	auditHeaderDeleted
)

// eventTypes names GitLab's audit event type for each change, per flavor and scope (group,
// instance). The catalog has every one of them; a test checks that.
var eventTypes = map[Flavor]map[auditKind][2]string{
	Unified: {
		auditCreate:           {"created_group_audit_event_streaming_destination", "created_instance_audit_event_streaming_destination"},
		auditUpdate:           {"updated_group_audit_event_streaming_destination", "updated_instance_audit_event_streaming_destination"},
		auditDelete:           {"deleted_group_audit_event_streaming_destination", "deleted_instance_audit_event_streaming_destination"},
		auditFiltersCreated:   {"event_type_filters_created", "event_type_filters_created"},
		auditFiltersDeleted:   {"event_type_filters_deleted", "event_type_filters_deleted"},
		auditNamespaceCreated: {"created_group_namespace_filter", "created_instance_namespace_filter"},
		auditNamespaceDeleted: {"deleted_group_namespace_filter", "deleted_instance_namespace_filter"},
		// The unified API changes headers within config: an update of the destination.
		auditHeaderCreated: {"updated_group_audit_event_streaming_destination", "updated_instance_audit_event_streaming_destination"},
		auditHeaderUpdated: {"updated_group_audit_event_streaming_destination", "updated_instance_audit_event_streaming_destination"},
		auditHeaderDeleted: {"updated_group_audit_event_streaming_destination", "updated_instance_audit_event_streaming_destination"},
	},
	LegacyHTTP: {
		auditCreate:           {"create_event_streaming_destination", "create_instance_event_streaming_destination"},
		auditUpdate:           {"update_event_streaming_destination", "update_instance_event_streaming_destination"},
		auditDelete:           {"destroy_event_streaming_destination", "destroy_instance_event_streaming_destination"},
		auditFiltersCreated:   {"event_type_filters_created", "event_type_filters_created"},
		auditFiltersDeleted:   {"event_type_filters_deleted", "event_type_filters_deleted"},
		auditNamespaceCreated: {"create_http_namespace_filter", "created_instance_namespace_filter"},
		auditNamespaceDeleted: {"delete_http_namespace_filter", "deleted_instance_namespace_filter"},
		auditHeaderCreated:    {"audit_events_streaming_headers_create", "audit_events_streaming_instance_headers_create"},
		auditHeaderUpdated:    {"audit_events_streaming_headers_update", "audit_events_streaming_instance_headers_update"},
		auditHeaderDeleted:    {"audit_events_streaming_headers_destroy", "audit_events_streaming_instance_headers_destroy"},
	},
	LegacyGCP: {
		auditCreate: {"google_cloud_logging_configuration_created", "instance_google_cloud_logging_configuration_created"},
		auditUpdate: {"google_cloud_logging_configuration_updated", "instance_google_cloud_logging_configuration_updated"},
		auditDelete: {"google_cloud_logging_configuration_deleted", "instance_google_cloud_logging_configuration_deleted"},
	},
	LegacyAWS: {
		auditCreate: {"amazon_s3_configuration_created", "instance_amazon_s3_configuration_created"},
		auditUpdate: {"amazon_s3_configuration_updated", "instance_amazon_s3_configuration_updated"},
		auditDelete: {"amazon_s3_configuration_deleted", "instance_amazon_s3_configuration_deleted"},
	},
}

// EventTypes lists every event type the service may record, for a test against the catalog.
func EventTypes() []string {
	var out []string
	for _, kinds := range eventTypes {
		for _, t := range kinds {
			out = append(out, t[0], t[1])
		}
	}
	return out
}

// targetTypes are GitLab's class names of the destination models, per flavor and scope.
var targetTypes = map[Flavor][2]string{
	Unified:    {"AuditEvents::Group::ExternalStreamingDestination", "AuditEvents::Instance::ExternalStreamingDestination"},
	LegacyHTTP: {"AuditEvents::ExternalAuditEventDestination", "AuditEvents::InstanceExternalAuditEventDestination"},
	LegacyGCP:  {"AuditEvents::GoogleCloudLoggingConfiguration", "AuditEvents::Instance::GoogleCloudLoggingConfiguration"},
	LegacyAWS:  {"AuditEvents::AmazonS3Configuration", "AuditEvents::Instance::AmazonS3Configuration"},
}

// record publishes the audit event of a change that has been stored. The message and the
// destination's name are all it says about the destination: never a secret, a header value or
// a credential. A failure to publish is logged, not returned: the change is made, and saying
// otherwise would make the caller retry it.
func (s *Service) record(ctx context.Context, a Actor, d Destination, kind auditKind, f Flavor, msg string) {
	if s.Changed != nil {
		s.Changed(ctx, kind != auditCreate) // the delivery engine picks the change up now, not at its next poll
	}
	if s.Auditor == nil || a.Principal == nil {
		return
	}
	types, ok := eventTypes[f][kind]
	if !ok {
		types = eventTypes[Unified][kind] // e.g. a legacy GCP destination's filters
	}
	scope := 0
	in := event.Input{
		AuthorID: a.Principal.User.ID, AuthorName: a.Principal.User.Name, AuthorEmail: a.Principal.User.Email,
		TargetID: json.RawMessage(strconv.FormatInt(d.ID, 10)), TargetDetails: d.Name,
		IPAddress: a.IP,
	}
	if d.Owner.Scope == store.ScopeGroup {
		in.EntityType, in.EntityPath = event.EntityGroup, d.Owner.Group.FullPath
		if id := d.Owner.Group.ID; id > 0 { // 0: a group whose GitLab id nobody told us yet
			in.EntityID = &id
		}
	} else {
		scope = 1
		in.EntityType = event.EntityInstance
	}
	in.EventType = types[scope]
	in.TargetType = targetTypes[f][scope]
	details, _ := json.Marshal(map[string]string{"custom_message": msg})
	in.Details = details
	// The change is made: record it even if the client has gone.
	if err := s.Auditor.Record(context.WithoutCancel(ctx), in, a.Principal.Producer(event.ViaService)); err != nil {
		s.logger().Error("self-audit event not recorded", "event_type", in.EventType, "destination_id", d.ID, "err", err)
	}
}
