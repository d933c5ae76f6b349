package graphql

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/auditstream/auditstream/internal/api/graphql/model"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/streamconfig"
)

// Helpers shared by the resolvers: each runs one service call and splits its error into the
// payload's errors and a top-level error (see Resolver.outcome).

func groupRef(id int64) streamconfig.Ref {
	return streamconfig.Ref{Scope: store.ScopeGroup, ID: id}
}

func instanceRef(id int64) streamconfig.Ref {
	return streamconfig.Ref{Scope: store.ScopeInstance, ID: id}
}

// legacyRef names a destination by a legacy id, whose class fixes scope and category.
func legacyRef(scope store.DestinationScope, category string, id int64) streamconfig.Ref {
	f := map[string]streamconfig.Flavor{"http": streamconfig.LegacyHTTP, "gcp": streamconfig.LegacyGCP, "aws": streamconfig.LegacyAWS}[category]
	return streamconfig.Ref{Scope: scope, ID: id, Category: category, Flavor: f}
}

// unifiedRef reads a group or instance destination id of the unified API (our extensions take
// either).
func unifiedRef(ctx context.Context, gid string) (streamconfig.Ref, error) {
	if id, err := model.ParseGID(gid, model.ClassGroupDestination); err == nil {
		return groupRef(id), nil
	}
	if id, err := model.ParseGID(gid, model.ClassInstanceDestination); err == nil {
		return instanceRef(id), nil
	}
	return streamconfig.Ref{}, gqlErr(ctx, strings.Join([]string{`"` + gid + `" is not a valid ID for`, model.ClassGroupDestination, "or", model.ClassInstanceDestination}, " "), codeBadRequest)
}

// anyRef reads a destination id of either API: unified (group or instance) or legacy (http,
// Google Cloud Logging or Amazon S3, of a group or the instance). The legacy id's class fixes
// the category, so an id of one legacy class never names a destination of another.
func anyRef(ctx context.Context, gid string) (streamconfig.Ref, error) {
	if ref, err := unifiedRef(ctx, gid); err == nil {
		return ref, nil
	}
	for _, c := range []struct {
		class    string
		scope    store.DestinationScope
		category string
	}{
		{model.ClassLegacyDestination, store.ScopeGroup, "http"},
		{model.ClassLegacyInstanceDestination, store.ScopeInstance, "http"},
		{model.ClassGCP, store.ScopeGroup, "gcp"},
		{model.ClassInstanceGCP, store.ScopeInstance, "gcp"},
		{model.ClassAWS, store.ScopeGroup, "aws"},
		{model.ClassInstanceAWS, store.ScopeInstance, "aws"},
	} {
		if id, err := model.ParseGID(gid, c.class); err == nil {
			return legacyRef(c.scope, c.category, id), nil
		}
	}
	return streamconfig.Ref{}, gqlErr(ctx, `"`+gid+`" is not a valid streaming destination ID of either API`, codeBadRequest)
}

func (r *Resolver) groupList(ctx context.Context, g *model.Group, category string) ([]streamconfig.Destination, error) {
	ns, err := r.svc.Namespaces.ByKey(ctx, g.Key)
	if err != nil {
		return nil, r.fail(ctx, err)
	}
	ds, err := r.svc.List(ctx, actor(ctx), streamconfig.Owner{Scope: store.ScopeGroup, Group: ns})
	if err != nil {
		return nil, r.fail(ctx, err)
	}
	return ofCategory(ds, category), nil
}

func (r *Resolver) instanceList(ctx context.Context, category string) ([]streamconfig.Destination, error) {
	ds, err := r.svc.List(ctx, actor(ctx), streamconfig.Owner{Scope: store.ScopeInstance})
	if err != nil {
		return nil, r.fail(ctx, err)
	}
	return ofCategory(ds, category), nil
}

func ofCategory(ds []streamconfig.Destination, category string) []streamconfig.Destination {
	if category == "" {
		return ds
	}
	out := ds[:0:0]
	for _, d := range ds {
		if d.Category == category {
			out = append(out, d)
		}
	}
	return out
}

// createIn creates a destination of the group groupPath names, or of the instance when it is
// nil.
func (r *Resolver) createIn(ctx context.Context, groupPath *string, p streamconfig.CreateParams) (streamconfig.Destination, []string, error) {
	p.Owner = streamconfig.Owner{Scope: store.ScopeInstance}
	if groupPath != nil {
		o, err := r.svc.GroupOwner(ctx, *groupPath)
		if err != nil {
			return streamconfig.Destination{}, nil, r.fail(ctx, err)
		}
		p.Owner = o
	}
	d, err := r.svc.Create(ctx, actor(ctx), p)
	errs, err := r.outcome(ctx, err)
	return d, errs, err
}

func (r *Resolver) update(ctx context.Context, p streamconfig.UpdateParams) (streamconfig.Destination, []string, error) {
	d, err := r.svc.Update(ctx, actor(ctx), p)
	errs, err := r.outcome(ctx, err)
	return d, errs, err
}

func (r *Resolver) delete(ctx context.Context, ref streamconfig.Ref) ([]string, error) {
	return r.outcome(ctx, r.svc.Delete(ctx, actor(ctx), ref))
}

// addFilters returns the list after the change, as GitLab's payloads do.
func (r *Resolver) addFilters(ctx context.Context, ref streamconfig.Ref, kind streamconfig.FilterKind, values []string) ([]string, []string, error) {
	d, err := r.svc.AddFilters(ctx, actor(ctx), ref, kind, values)
	errs, err := r.outcome(ctx, err)
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	if kind == streamconfig.DenyTypes {
		return orEmpty(d.DenyEventTypes), errs, nil
	}
	return orEmpty(d.EventTypes), errs, nil
}

func (r *Resolver) removeFilters(ctx context.Context, ref streamconfig.Ref, kind streamconfig.FilterKind, values []string) ([]string, error) {
	_, err := r.svc.RemoveFilters(ctx, actor(ctx), ref, kind, values)
	return r.outcome(ctx, err)
}

func (r *Resolver) addNamespaceFilter(ctx context.Context, ref streamconfig.Ref, path *string, kind store.NamespaceKind, single bool) (streamconfig.Destination, streamconfig.NamespaceFilter, []string, error) {
	p := ""
	if path != nil {
		p = *path
	}
	d, f, err := r.svc.AddNamespaceFilter(ctx, actor(ctx), ref, p, kind, single)
	errs, err := r.outcome(ctx, err)
	return d, f, errs, err
}

func (r *Resolver) addHeader(ctx context.Context, ref streamconfig.Ref, key, value string, active *bool) (streamconfig.Header, []string, error) {
	h, err := r.svc.AddHeader(ctx, actor(ctx), ref, key, value, active == nil || *active)
	errs, err := r.outcome(ctx, err)
	return h, errs, err
}

// Legacy inputs become unified configs.

func urlConfig(url string) []byte {
	b, _ := json.Marshal(map[string]string{"url": url})
	return b
}

func gcpCreate(project, email string, logID *string, key string, name *string) streamconfig.CreateParams {
	c := map[string]string{"googleProjectIdName": project, "clientEmail": email, "logIdName": "audit_events"} // GitLab's legacy default
	if logID != nil {
		c["logIdName"] = *logID
	}
	b, _ := json.Marshal(c)
	return streamconfig.CreateParams{Category: "gcp", Config: b, Name: name, SecretToken: &key, Flavor: streamconfig.LegacyGCP}
}

func gcpUpdate(ref streamconfig.Ref, project, email, logID, key, name *string, active *bool) streamconfig.UpdateParams {
	return streamconfig.UpdateParams{Ref: ref, Name: name, SecretToken: key, Active: active,
		ConfigPatch: map[string]*string{"googleProjectIdName": project, "clientEmail": email, "logIdName": logID}}
}

func awsCreate(keyID, bucket, region, secret string, name *string) streamconfig.CreateParams {
	b, _ := json.Marshal(map[string]string{"accessKeyXid": keyID, "bucketName": bucket, "awsRegion": region})
	return streamconfig.CreateParams{Category: "aws", Config: b, Name: name, SecretToken: &secret, Flavor: streamconfig.LegacyAWS}
}

func awsUpdate(ref streamconfig.Ref, keyID, bucket, region, secret, name *string, active *bool) streamconfig.UpdateParams {
	return streamconfig.UpdateParams{Ref: ref, Name: name, SecretToken: secret, Active: active,
		ConfigPatch: map[string]*string{"accessKeyXid": keyID, "bucketName": bucket, "awsRegion": region}}
}

// Delivery views and actions: the destination is authorized through streamconfig, then the
// engine answers.

func intPtr(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}

// defaultPageLimit is the page size of a list whose first argument is absent (pageLimit).
const defaultPageLimit = 50

// pageLimit reads a list's first argument: defaultPageLimit by default, at most maxPageSize.
func pageLimit(ctx context.Context, first *int) (int, error) {
	if first == nil {
		return defaultPageLimit, nil
	}
	if *first < 1 || *first > maxPageSize {
		return 0, gqlErr(ctx, fmt.Sprintf("first must be between 1 and %d", maxPageSize), codeBadRequest)
	}
	return *first, nil
}

func (r *Resolver) deliveryStatus(ctx context.Context, gid string) (*model.AuditEventStreamingDeliveryStatus, error) {
	ref, err := unifiedRef(ctx, gid)
	if err != nil {
		return nil, err
	}
	st, err := r.svc.DeliveryStatus(ctx, actor(ctx), ref)
	if err != nil {
		return nil, r.fail(ctx, err)
	}
	out := &model.AuditEventStreamingDeliveryStatus{Status: st.State(), LastSuccessAt: timePtr(st.LastSuccess),
		OldestPendingEventAt: timePtr(st.OldestPending), DeliveredEvents: int(st.Delivered), FailedEvents: int(st.Failed),
		DeadLetteredEvents: int(st.DeadLettered), DeadLetterCount: int(st.DeadLetterCount)}
	if st.Pending >= 0 {
		p := int(st.Pending)
		out.PendingEvents = &p
	}
	if e := st.LastError; e != nil {
		out.LastError = &model.AuditEventStreamingDeliveryError{At: timePtr(e.At), StatusCode: intPtr(e.StatusCode), Message: e.Message}
	}
	return out, nil
}

func (r *Resolver) deliveryAttempts(ctx context.Context, gid string, first *int) ([]*model.AuditEventStreamingDeliveryAttempt, error) {
	ref, err := unifiedRef(ctx, gid)
	if err != nil {
		return nil, err
	}
	limit, err := pageLimit(ctx, first)
	if err != nil {
		return nil, err
	}
	as, err := r.svc.Attempts(ctx, actor(ctx), ref, limit)
	if err != nil {
		return nil, r.fail(ctx, err)
	}
	out := make([]*model.AuditEventStreamingDeliveryAttempt, 0, len(as))
	for _, a := range as {
		m := &model.AuditEventStreamingDeliveryAttempt{At: a.At.UTC(), Success: a.Success, Count: a.Count, StatusCode: intPtr(a.StatusCode),
			Error: strPtr(a.Error), DurationMs: int(a.DurationMs), Test: a.Test}
		if a.FirstEventID > 0 {
			m.FirstEventID, m.LastEventID = strPtr(strconv.FormatInt(a.FirstEventID, 10)), strPtr(strconv.FormatInt(a.LastEventID, 10))
		}
		out = append(out, m)
	}
	return out, nil
}

func (r *Resolver) deadLetters(ctx context.Context, gid string, first *int, after *string) (*model.AuditEventStreamingDeadLetterConnection, error) {
	ref, err := unifiedRef(ctx, gid)
	if err != nil {
		return nil, err
	}
	limit, err := pageLimit(ctx, first)
	if err != nil {
		return nil, err
	}
	var before int64
	if after != nil {
		i, err := parseCursor(*after)
		if err != nil {
			return nil, gqlErr(ctx, err.Error(), codeBadRequest)
		}
		before = int64(i)
	}
	dls, n, err := r.svc.DeadLetters(ctx, actor(ctx), ref, before, limit+1)
	if err != nil {
		return nil, r.fail(ctx, err)
	}
	c := &model.AuditEventStreamingDeadLetterConnection{Count: int(n), Nodes: []*model.AuditEventStreamingDeadLetter{}, PageInfo: &model.PageInfo{HasPreviousPage: after != nil}}
	if len(dls) > limit {
		dls, c.PageInfo.HasNextPage = dls[:limit], true
	}
	for _, dl := range dls {
		c.Nodes = append(c.Nodes, &model.AuditEventStreamingDeadLetter{ID: model.AuditEventsStreamingDeadLetterID(dl.ID), EventID: strconv.FormatInt(dl.EventID, 10),
			EventType: dl.EventType, Event: model.JSON(dl.Event), StatusCode: intPtr(dl.StatusCode), Error: dl.Error, Attempts: dl.Attempts,
			FirstFailedAt: dl.FirstFailedAt.UTC(), LastFailedAt: dl.LastFailedAt.UTC()})
	}
	if len(dls) > 0 {
		start, end := cursorOf(int(dls[0].ID)), cursorOf(int(dls[len(dls)-1].ID))
		c.PageInfo.StartCursor, c.PageInfo.EndCursor = &start, &end
	}
	return c, nil
}
