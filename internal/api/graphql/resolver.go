package graphql

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/auditstream/auditstream/internal/api/graphql/model"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/streamconfig"
)

// Resolver resolves the schema's fields. Resolvers only translate: every rule lives in
// streamconfig.Service.
type Resolver struct {
	svc     *streamconfig.Service
	catalog *event.Catalog
	log     *slog.Logger
}

type actorKey struct{}

func withActor(ctx context.Context, a streamconfig.Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

func actor(ctx context.Context) streamconfig.Actor {
	a, _ := ctx.Value(actorKey{}).(streamconfig.Actor)
	return a
}

// Stable codes in the extensions of top-level errors.
const (
	codeNotFound    = "not_found"
	codeRateLimited = "rate_limited"
	codeUnavailable = "unavailable"
	codeBadRequest  = "bad_request"
	codeConflict    = "conflict"
	codeSecretKey   = "secret_key_mismatch"
	// codeTooManyRequests: the user already runs the most requests allowed at once.
	codeTooManyRequests = "too_many_requests"
	// codeTimeout: the request ran past its time limit.
	codeTimeout = "timeout"
)

func gqlErr(ctx context.Context, msg, code string) *gqlerror.Error {
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": code}}
}

// fail turns a service error into a top-level GraphQL error.
func (r *Resolver) fail(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, streamconfig.ErrNotFound):
		return gqlErr(ctx, streamconfig.ErrNotFound.Error(), codeNotFound)
	case errors.Is(err, streamconfig.ErrRateLimited):
		return gqlErr(ctx, streamconfig.ErrRateLimited.Error(), codeRateLimited)
	case errors.Is(err, streamconfig.ErrSecretKey):
		r.log.Error("graphql: destination secrets unreadable", "err", err)
		return gqlErr(ctx, "Internal server error: the server cannot read destination secrets with its configured key; an administrator must restore it", codeSecretKey)
	case errors.Is(err, streamconfig.ErrContention):
		return gqlErr(ctx, streamconfig.ErrContention.Error(), codeConflict)
	}
	var in *streamconfig.InputError
	if errors.As(err, &in) {
		return gqlErr(ctx, in.Error(), codeBadRequest)
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return gqlErr(ctx, "The request ran past the server's time limit for one request; nothing more was read or changed: ask for less (fewer aliases, smaller pages)", codeTimeout)
	}
	r.log.Error("graphql: request failed", "err", err)
	return gqlErr(ctx, "Internal server error: the database cannot be reached right now; nothing was changed, retry", codeUnavailable)
}

// outcome splits a mutation's error: input errors go to the payload's errors list (HTTP 200,
// as GitLab does), the rest become top-level errors.
func (r *Resolver) outcome(ctx context.Context, err error) ([]string, error) {
	if err == nil {
		return []string{}, nil
	}
	var in *streamconfig.InputError
	if errors.As(err, &in) {
		return in.Messages, nil
	}
	return nil, r.fail(ctx, err)
}

// --- conversions -------------------------------------------------------------------------------

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func orEmpty(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// shownSecret is the secretToken field: the http verification token; GitLab shows no other
// category's secret.
func shownSecret(d streamconfig.Destination) string {
	if d.Category == "http" {
		return d.SecretToken
	}
	return ""
}

func signing(d streamconfig.Destination) (*string, *time.Time) {
	if d.Category != "http" {
		return nil, nil
	}
	return strPtr(d.SigningSecret), timePtr(d.PreviousValidUntil)
}

func groupModel(g store.Namespace) *model.Group {
	return &model.Group{ID: model.GID(model.ClassGroup, g.ID), FullPath: g.FullPath, Name: g.Name, Path: g.Path, Key: g.Key, TopLevel: g.ParentKey == 0}
}

func (r *Resolver) namespaceModel(ctx context.Context, ns store.Namespace) *model.Namespace {
	class := model.ClassGroup
	if ns.Kind == store.KindProject {
		class = model.ClassProject
	}
	names := []string{ns.Name}
	if chain, err := r.svc.Namespaces.Chain(ctx, ns); err == nil {
		names = names[:0]
		for i := len(chain) - 1; i >= 0; i-- {
			names = append(names, chain[i].Name)
		}
	}
	return &model.Namespace{ID: model.GID(class, ns.ID), FullPath: ns.FullPath, Name: ns.Name, Path: ns.Path, FullName: strings.Join(names, " / ")}
}

func (r *Resolver) groupDest(ctx context.Context, d streamconfig.Destination) *model.GroupAuditEventStreamingDestination {
	sec, prev := signing(d)
	m := &model.GroupAuditEventStreamingDestination{
		ID: model.GID(model.ClassGroupDestination, d.ID), Name: d.Name, Category: d.Category, Config: model.JSON(d.Config),
		SecretToken: shownSecret(d), Active: d.Active, EventTypeFilters: orEmpty(d.EventTypes), Group: groupModel(d.Owner.Group),
		DenyEventTypeFilters: orEmpty(d.DenyEventTypes), CategoryFilters: orEmpty(d.Categories), DenyCategoryFilters: orEmpty(d.DenyCategories),
		SigningSecret: sec, PreviousSigningSecretExpiresAt: prev, CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
		NamespaceFilters: []*model.GroupAuditEventNamespaceFilter{}, FilterExpression: d.FilterExpression,
	}
	for _, n := range d.Namespaces {
		m.NamespaceFilters = append(m.NamespaceFilters, &model.GroupAuditEventNamespaceFilter{
			ID: model.GID(model.ClassGroupNamespaceFilter, n.ID), Namespace: r.namespaceModel(ctx, n.Namespace), ExternalStreamingDestination: m})
	}
	return m
}

func (r *Resolver) instanceDest(ctx context.Context, d streamconfig.Destination) *model.InstanceAuditEventStreamingDestination {
	sec, prev := signing(d)
	m := &model.InstanceAuditEventStreamingDestination{
		ID: model.GID(model.ClassInstanceDestination, d.ID), Name: d.Name, Category: d.Category, Config: model.JSON(d.Config),
		SecretToken: shownSecret(d), Active: d.Active, EventTypeFilters: orEmpty(d.EventTypes),
		DenyEventTypeFilters: orEmpty(d.DenyEventTypes), CategoryFilters: orEmpty(d.Categories), DenyCategoryFilters: orEmpty(d.DenyCategories),
		SigningSecret: sec, PreviousSigningSecretExpiresAt: prev, CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
		NamespaceFilters: []*model.InstanceAuditEventNamespaceFilter{}, FilterExpression: d.FilterExpression,
	}
	for _, n := range d.Namespaces {
		m.NamespaceFilters = append(m.NamespaceFilters, &model.InstanceAuditEventNamespaceFilter{
			ID: model.GID(model.ClassInstanceNamespaceFilter, n.ID), Namespace: r.namespaceModel(ctx, n.Namespace), ExternalStreamingDestination: m})
	}
	return m
}

// cfg reads one string field of a destination's config.
func cfg(d streamconfig.Destination, key string) string {
	var obj map[string]json.RawMessage
	if json.Unmarshal(d.Config, &obj) != nil {
		return ""
	}
	var s string
	_ = json.Unmarshal(obj[key], &s)
	return s
}

func (r *Resolver) legacyHTTP(ctx context.Context, d streamconfig.Destination) *model.ExternalAuditEventDestination {
	m := &model.ExternalAuditEventDestination{
		ID: model.GID(model.ClassLegacyDestination, d.ID), Name: d.Name, DestinationURL: cfg(d, "url"), VerificationToken: d.SecretToken,
		Active: d.Active, EventTypeFilters: orEmpty(d.EventTypes), Group: groupModel(d.Owner.Group), FilterExpression: d.FilterExpression,
	}
	for _, h := range d.Headers {
		m.AllHeaders = append(m.AllHeaders, &model.AuditEventStreamingHeader{ID: model.GID(model.ClassHeader, h.ID), Key: h.Name, Value: h.Value, Active: h.Active})
	}
	if len(d.Namespaces) > 0 {
		n := d.Namespaces[0]
		m.NamespaceFilter = &model.AuditEventStreamingHTTPNamespaceFilter{
			ID: model.GID(model.ClassHTTPNamespaceFilter, n.ID), Namespace: r.namespaceModel(ctx, n.Namespace), ExternalAuditEventDestination: m}
	}
	return m
}

func legacyInstanceHTTP(d streamconfig.Destination) *model.InstanceExternalAuditEventDestination {
	m := &model.InstanceExternalAuditEventDestination{
		ID: model.GID(model.ClassLegacyInstanceDestination, d.ID), Name: d.Name, DestinationURL: cfg(d, "url"), VerificationToken: d.SecretToken,
		Active: d.Active, EventTypeFilters: orEmpty(d.EventTypes), FilterExpression: d.FilterExpression,
	}
	for _, h := range d.Headers {
		m.AllHeaders = append(m.AllHeaders, &model.AuditEventsStreamingInstanceHeader{ID: model.GID(model.ClassInstanceHeader, h.ID), Key: h.Name, Value: h.Value, Active: h.Active})
	}
	return m
}

func gcpModel(d streamconfig.Destination) *model.GoogleCloudLoggingConfigurationType {
	return &model.GoogleCloudLoggingConfigurationType{ID: model.GID(model.ClassGCP, d.ID), Name: d.Name, GoogleProjectIDName: cfg(d, "googleProjectIdName"),
		ClientEmail: cfg(d, "clientEmail"), LogIDName: cfg(d, "logIdName"), Active: d.Active, Group: groupModel(d.Owner.Group), FilterExpression: d.FilterExpression}
}

func instanceGCPModel(d streamconfig.Destination) *model.InstanceGoogleCloudLoggingConfigurationType {
	return &model.InstanceGoogleCloudLoggingConfigurationType{ID: model.GID(model.ClassInstanceGCP, d.ID), Name: d.Name, GoogleProjectIDName: cfg(d, "googleProjectIdName"),
		ClientEmail: cfg(d, "clientEmail"), LogIDName: cfg(d, "logIdName"), Active: d.Active, FilterExpression: d.FilterExpression}
}

func awsModel(d streamconfig.Destination) *model.AmazonS3ConfigurationType {
	return &model.AmazonS3ConfigurationType{ID: model.GID(model.ClassAWS, d.ID), Name: d.Name, AccessKeyXid: cfg(d, "accessKeyXid"),
		AWSRegion: cfg(d, "awsRegion"), BucketName: cfg(d, "bucketName"), Active: d.Active, Group: groupModel(d.Owner.Group), FilterExpression: d.FilterExpression}
}

func instanceAWSModel(d streamconfig.Destination) *model.InstanceAmazonS3ConfigurationType {
	return &model.InstanceAmazonS3ConfigurationType{ID: model.GID(model.ClassInstanceAWS, d.ID), Name: d.Name, AccessKeyXid: cfg(d, "accessKeyXid"),
		AWSRegion: cfg(d, "awsRegion"), BucketName: cfg(d, "bucketName"), Active: d.Active, FilterExpression: d.FilterExpression}
}

// --- pagination --------------------------------------------------------------------------------

// maxPageSize is GitLab's default maximum page size.
const maxPageSize = 100

// page is one page of a connection. Cursors are opaque: base64 of the item's position.
type page[T any] struct {
	nodes   []T
	cursors []string
	info    *model.PageInfo
	count   int
}

func cursorOf(i int) string { return base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(i))) }

func parseCursor(c string) (int, error) {
	b, err := base64.StdEncoding.DecodeString(c)
	if err != nil {
		return 0, fmt.Errorf("invalid cursor %q", c)
	}
	i, err := strconv.Atoi(string(b))
	if err != nil || i < 0 {
		return 0, fmt.Errorf("invalid cursor %q", c)
	}
	return i, nil
}

// paginate applies GitLab's connection arguments to items.
func paginate[T any](ctx context.Context, items []T, after, before *string, first, last *int) (page[T], error) {
	lo, hi := 0, len(items)
	if after != nil {
		i, err := parseCursor(*after)
		if err != nil {
			return page[T]{}, gqlErr(ctx, err.Error(), codeBadRequest)
		}
		lo = min(i+1, hi)
	}
	if before != nil {
		i, err := parseCursor(*before)
		if err != nil {
			return page[T]{}, gqlErr(ctx, err.Error(), codeBadRequest)
		}
		hi = max(min(i, hi), lo)
	}
	for _, n := range []*int{first, last} {
		if n != nil && (*n < 0 || *n > maxPageSize) {
			return page[T]{}, gqlErr(ctx, fmt.Sprintf("first and last must be between 0 and %d", maxPageSize), codeBadRequest)
		}
	}
	start, end := lo, hi
	if first != nil && end-start > *first {
		end = start + *first
	}
	if last != nil && end-start > *last {
		start = end - *last
	}
	if first == nil && last == nil && end-start > maxPageSize {
		end = start + maxPageSize
	}
	p := page[T]{nodes: append([]T{}, items[start:end]...), count: len(items), info: &model.PageInfo{HasPreviousPage: start > 0, HasNextPage: end < len(items)}}
	for i := start; i < end; i++ {
		p.cursors = append(p.cursors, cursorOf(i))
	}
	if len(p.cursors) > 0 {
		p.info.StartCursor, p.info.EndCursor = &p.cursors[0], &p.cursors[len(p.cursors)-1]
	}
	return p, nil
}
