// Package model holds the Go types of the GraphQL schema: the ones gqlgen generates
// (models.go) and the hand-written ones here, which carry data that resolvers of their fields
// need and the scalars with GitLab's global-id format.
package model

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Group is a group. Key is auditstream's internal namespace key, for field resolvers.
type Group struct {
	ID       string `json:"id"`
	FullPath string `json:"fullPath"`
	Name     string `json:"name"`
	Path     string `json:"path"`
	Key      int64  `json:"-"`
	TopLevel bool   `json:"-"`
}

// ExternalAuditEventDestination is a group's http destination seen through the legacy API.
// AllHeaders backs the paginated headers field.
type ExternalAuditEventDestination struct {
	ID                string                                  `json:"id"`
	Name              string                                  `json:"name"`
	DestinationURL    string                                  `json:"destinationUrl"`
	VerificationToken string                                  `json:"verificationToken"`
	Active            bool                                    `json:"active"`
	EventTypeFilters  []string                                `json:"eventTypeFilters"`
	Group             *Group                                  `json:"group"`
	NamespaceFilter   *AuditEventStreamingHTTPNamespaceFilter `json:"namespaceFilter,omitempty"`
	AllHeaders        []*AuditEventStreamingHeader            `json:"-"`
	FilterExpression  string                                  `json:"filterExpression"`
}

// InstanceExternalAuditEventDestination is an instance http destination seen through the
// legacy API. AllHeaders backs the paginated headers field.
type InstanceExternalAuditEventDestination struct {
	ID                string                                `json:"id"`
	Name              string                                `json:"name"`
	DestinationURL    string                                `json:"destinationUrl"`
	VerificationToken string                                `json:"verificationToken"`
	Active            bool                                  `json:"active"`
	EventTypeFilters  []string                              `json:"eventTypeFilters"`
	AllHeaders        []*AuditEventsStreamingInstanceHeader `json:"-"`
	FilterExpression  string                                `json:"filterExpression"`
}

// JSON is the JSON scalar: any JSON value, kept as its encoding.
type JSON json.RawMessage

// MarshalGQL writes the value as it is.
func (j JSON) MarshalGQL(w io.Writer) {
	if len(j) == 0 {
		_, _ = io.WriteString(w, "null")
		return
	}
	_, _ = w.Write(j)
}

// UnmarshalGQL takes the decoded GraphQL value (from variables or a literal) and encodes it.
func (j *JSON) UnmarshalGQL(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("JSON: %w", err)
	}
	*j = b
	return nil
}

// gidPrefix starts every GitLab global id.
const gidPrefix = "gid://gitlab/"

// GID formats a GitLab global id.
func GID(class string, id int64) string {
	return gidPrefix + class + "/" + strconv.FormatInt(id, 10)
}

// ParseGID reads a GitLab global id of the given class. GitLab's error text: "<v> is not a
// valid <class>".
func ParseGID(v any, class string) (int64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("%v is not a valid %s ID: a global id is a string", v, class)
	}
	rest, ok := strings.CutPrefix(s, gidPrefix+class+"/")
	id, err := strconv.ParseInt(rest, 10, 64)
	if !ok || err != nil || id <= 0 || strconv.FormatInt(id, 10) != rest {
		return 0, fmt.Errorf("%q is not a valid ID for %s", s, class)
	}
	return id, nil
}

func marshalGID(w io.Writer, class string, id int64) {
	_, _ = io.WriteString(w, strconv.Quote(GID(class, id)))
}

// Global-id classes, as GitLab names its models.
const (
	ClassGroupDestination          = "AuditEvents::Group::ExternalStreamingDestination"
	ClassInstanceDestination       = "AuditEvents::Instance::ExternalStreamingDestination"
	ClassGroupNamespaceFilter      = "AuditEvents::Group::NamespaceFilter"
	ClassInstanceNamespaceFilter   = "AuditEvents::Instance::NamespaceFilter"
	ClassLegacyDestination         = "AuditEvents::ExternalAuditEventDestination"
	ClassLegacyInstanceDestination = "AuditEvents::InstanceExternalAuditEventDestination"
	ClassHeader                    = "AuditEvents::Streaming::Header"
	ClassInstanceHeader            = "AuditEvents::Streaming::InstanceHeader"
	ClassHTTPNamespaceFilter       = "AuditEvents::Streaming::HTTP::NamespaceFilter"
	ClassGCP                       = "AuditEvents::GoogleCloudLoggingConfiguration"
	ClassInstanceGCP               = "AuditEvents::Instance::GoogleCloudLoggingConfiguration"
	ClassAWS                       = "AuditEvents::AmazonS3Configuration"
	ClassInstanceAWS               = "AuditEvents::Instance::AmazonS3Configuration"
	ClassDeadLetter                = "AuditEvents::Streaming::DeadLetter"
	ClassGroup                     = "Group"
	ClassProject                   = "Project"
	ClassUser                      = "User"
)

// One type per global-id scalar of the schema, so that an id of the wrong class is refused
// while the request is read, as GitLab does.

// AuditEventsGroupExternalStreamingDestinationID is a group destination id (unified API).
type AuditEventsGroupExternalStreamingDestinationID int64

func (x AuditEventsGroupExternalStreamingDestinationID) MarshalGQL(w io.Writer) {
	marshalGID(w, ClassGroupDestination, int64(x))
}
func (x *AuditEventsGroupExternalStreamingDestinationID) UnmarshalGQL(v any) error {
	id, err := ParseGID(v, ClassGroupDestination)
	*x = AuditEventsGroupExternalStreamingDestinationID(id)
	return err
}

// AuditEventsInstanceExternalStreamingDestinationID is an instance destination id (unified API).
type AuditEventsInstanceExternalStreamingDestinationID int64

func (x AuditEventsInstanceExternalStreamingDestinationID) MarshalGQL(w io.Writer) {
	marshalGID(w, ClassInstanceDestination, int64(x))
}
func (x *AuditEventsInstanceExternalStreamingDestinationID) UnmarshalGQL(v any) error {
	id, err := ParseGID(v, ClassInstanceDestination)
	*x = AuditEventsInstanceExternalStreamingDestinationID(id)
	return err
}

// AuditEventsGroupNamespaceFilterID is a group destination's namespace filter id.
type AuditEventsGroupNamespaceFilterID int64

func (x AuditEventsGroupNamespaceFilterID) MarshalGQL(w io.Writer) {
	marshalGID(w, ClassGroupNamespaceFilter, int64(x))
}
func (x *AuditEventsGroupNamespaceFilterID) UnmarshalGQL(v any) error {
	id, err := ParseGID(v, ClassGroupNamespaceFilter)
	*x = AuditEventsGroupNamespaceFilterID(id)
	return err
}

// AuditEventsInstanceNamespaceFilterID is an instance destination's namespace filter id.
type AuditEventsInstanceNamespaceFilterID int64

func (x AuditEventsInstanceNamespaceFilterID) MarshalGQL(w io.Writer) {
	marshalGID(w, ClassInstanceNamespaceFilter, int64(x))
}
func (x *AuditEventsInstanceNamespaceFilterID) UnmarshalGQL(v any) error {
	id, err := ParseGID(v, ClassInstanceNamespaceFilter)
	*x = AuditEventsInstanceNamespaceFilterID(id)
	return err
}

// AuditEventsExternalAuditEventDestinationID is a group http destination id (legacy API).
type AuditEventsExternalAuditEventDestinationID int64

func (x AuditEventsExternalAuditEventDestinationID) MarshalGQL(w io.Writer) {
	marshalGID(w, ClassLegacyDestination, int64(x))
}
func (x *AuditEventsExternalAuditEventDestinationID) UnmarshalGQL(v any) error {
	id, err := ParseGID(v, ClassLegacyDestination)
	*x = AuditEventsExternalAuditEventDestinationID(id)
	return err
}

// AuditEventsInstanceExternalAuditEventDestinationID is an instance http destination id
// (legacy API).
type AuditEventsInstanceExternalAuditEventDestinationID int64

func (x AuditEventsInstanceExternalAuditEventDestinationID) MarshalGQL(w io.Writer) {
	marshalGID(w, ClassLegacyInstanceDestination, int64(x))
}
func (x *AuditEventsInstanceExternalAuditEventDestinationID) UnmarshalGQL(v any) error {
	id, err := ParseGID(v, ClassLegacyInstanceDestination)
	*x = AuditEventsInstanceExternalAuditEventDestinationID(id)
	return err
}

// AuditEventsStreamingHeaderID is a group http destination's header id (legacy API).
type AuditEventsStreamingHeaderID int64

func (x AuditEventsStreamingHeaderID) MarshalGQL(w io.Writer) {
	marshalGID(w, ClassHeader, int64(x))
}
func (x *AuditEventsStreamingHeaderID) UnmarshalGQL(v any) error {
	id, err := ParseGID(v, ClassHeader)
	*x = AuditEventsStreamingHeaderID(id)
	return err
}

// AuditEventsStreamingInstanceHeaderID is an instance http destination's header id (legacy API).
type AuditEventsStreamingInstanceHeaderID int64

func (x AuditEventsStreamingInstanceHeaderID) MarshalGQL(w io.Writer) {
	marshalGID(w, ClassInstanceHeader, int64(x))
}
func (x *AuditEventsStreamingInstanceHeaderID) UnmarshalGQL(v any) error {
	id, err := ParseGID(v, ClassInstanceHeader)
	*x = AuditEventsStreamingInstanceHeaderID(id)
	return err
}

// AuditEventsStreamingHTTPNamespaceFilterID is a group http destination's namespace filter id
// (legacy API).
type AuditEventsStreamingHTTPNamespaceFilterID int64

func (x AuditEventsStreamingHTTPNamespaceFilterID) MarshalGQL(w io.Writer) {
	marshalGID(w, ClassHTTPNamespaceFilter, int64(x))
}
func (x *AuditEventsStreamingHTTPNamespaceFilterID) UnmarshalGQL(v any) error {
	id, err := ParseGID(v, ClassHTTPNamespaceFilter)
	*x = AuditEventsStreamingHTTPNamespaceFilterID(id)
	return err
}

// AuditEventsGoogleCloudLoggingConfigurationID is a group gcp destination id (legacy API).
type AuditEventsGoogleCloudLoggingConfigurationID int64

func (x AuditEventsGoogleCloudLoggingConfigurationID) MarshalGQL(w io.Writer) {
	marshalGID(w, ClassGCP, int64(x))
}
func (x *AuditEventsGoogleCloudLoggingConfigurationID) UnmarshalGQL(v any) error {
	id, err := ParseGID(v, ClassGCP)
	*x = AuditEventsGoogleCloudLoggingConfigurationID(id)
	return err
}

// AuditEventsInstanceGoogleCloudLoggingConfigurationID is an instance gcp destination id
// (legacy API).
type AuditEventsInstanceGoogleCloudLoggingConfigurationID int64

func (x AuditEventsInstanceGoogleCloudLoggingConfigurationID) MarshalGQL(w io.Writer) {
	marshalGID(w, ClassInstanceGCP, int64(x))
}
func (x *AuditEventsInstanceGoogleCloudLoggingConfigurationID) UnmarshalGQL(v any) error {
	id, err := ParseGID(v, ClassInstanceGCP)
	*x = AuditEventsInstanceGoogleCloudLoggingConfigurationID(id)
	return err
}

// AuditEventsAmazonS3ConfigurationID is a group aws destination id (legacy API).
type AuditEventsAmazonS3ConfigurationID int64

func (x AuditEventsAmazonS3ConfigurationID) MarshalGQL(w io.Writer) {
	marshalGID(w, ClassAWS, int64(x))
}
func (x *AuditEventsAmazonS3ConfigurationID) UnmarshalGQL(v any) error {
	id, err := ParseGID(v, ClassAWS)
	*x = AuditEventsAmazonS3ConfigurationID(id)
	return err
}

// AuditEventsInstanceAmazonS3ConfigurationID is an instance aws destination id (legacy API).
type AuditEventsInstanceAmazonS3ConfigurationID int64

func (x AuditEventsInstanceAmazonS3ConfigurationID) MarshalGQL(w io.Writer) {
	marshalGID(w, ClassInstanceAWS, int64(x))
}
func (x *AuditEventsInstanceAmazonS3ConfigurationID) UnmarshalGQL(v any) error {
	id, err := ParseGID(v, ClassInstanceAWS)
	*x = AuditEventsInstanceAmazonS3ConfigurationID(id)
	return err
}

// AuditEventsStreamingDeadLetterID is a dead letter's id.
type AuditEventsStreamingDeadLetterID int64

func (x AuditEventsStreamingDeadLetterID) MarshalGQL(w io.Writer) {
	marshalGID(w, ClassDeadLetter, int64(x))
}
func (x *AuditEventsStreamingDeadLetterID) UnmarshalGQL(v any) error {
	id, err := ParseGID(v, ClassDeadLetter)
	*x = AuditEventsStreamingDeadLetterID(id)
	return err
}

// GroupID is a group's global id.
type GroupID int64

func (x GroupID) MarshalGQL(w io.Writer) { marshalGID(w, ClassGroup, int64(x)) }
func (x *GroupID) UnmarshalGQL(v any) error {
	id, err := ParseGID(v, ClassGroup)
	*x = GroupID(id)
	return err
}
