// Package adminaudit builds the audit events of the changes auditstream itself makes to users,
// tokens, members, groups and projects (through the REST API, the CLI or the UI), in GitLab's
// event types and detail keys, so that they are recorded like any producer's event: the caller
// hands each to ingest.Service.Record. It only builds events; it never publishes them, and it
// never puts a secret (a token's value or hash) into one.
package adminaudit

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/store"
)

// Author is who made a change: a signed-in user (ID > 0) or, for the CLI, the operator at the
// shell (ID 0, Name says who). IP is the client's address, empty when there is none.
type Author struct {
	ID    int64
	Name  string
	Email string
	IP    string
}

// AuthorOf returns u as the author of a change made from ip.
func AuthorOf(u store.User, ip string) Author {
	return Author{ID: u.ID, Name: u.Name, Email: u.Email, IP: ip}
}

// GitLab's event types, one per change. All are in the embedded catalog (a test checks).
const (
	TypeUserCreated     = "user_created"
	TypeTokenCreated    = "personal_access_token_created"
	TypeTokenRevoked    = "personal_access_token_revoked"
	TypeMemberCreated   = "member_created"
	TypeMemberUpdated   = "member_updated"
	TypeMemberDestroyed = "member_destroyed"
	TypeGroupCreated    = "group_created"
	TypeProjectCreated  = "project_created"
	// Group access tokens: GitLab records a revoked one as deleted.
	TypeGroupTokenCreated = "group_access_token_created"
	TypeGroupTokenDeleted = "group_access_token_deleted"
	// Ours: events the log lost, re-published from the store's copies.
	TypeTrailRepublished = "auditstream_trail_republished"
)

// Types lists every event type this package builds.
func Types() []string {
	return []string{TypeUserCreated, TypeTokenCreated, TypeTokenRevoked, TypeMemberCreated,
		TypeMemberUpdated, TypeMemberDestroyed, TypeGroupCreated, TypeProjectCreated,
		TypeGroupTokenCreated, TypeGroupTokenDeleted, TypeTrailRepublished}
}

// Target types: GitLab's class names.
const (
	targetUser    = "User"
	targetToken   = "PersonalAccessToken"
	targetGroup   = "Group"
	targetProject = "Project"
)

func (a Author) input(eventType string) event.Input {
	return event.Input{EventType: eventType, AuthorID: a.ID, AuthorName: a.Name, AuthorEmail: a.Email, IPAddress: a.IP}
}

func details(kv ...any) json.RawMessage {
	// An ordered object: GitLab's details keep their keys in the order they were set.
	b := []byte{'{'}
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(kv[i])
		v, _ := json.Marshal(kv[i+1])
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}')
}

func idJSON(id int64) json.RawMessage { return json.RawMessage(strconv.FormatInt(id, 10)) }

func userEntity(in *event.Input, u store.User) {
	id := u.ID
	in.EntityType, in.EntityID, in.EntityPath = event.EntityUser, &id, u.Username
}

// namespaceEntity makes ns the event's entity. A group known only by its path (id 0) is named
// by path alone.
func namespaceEntity(in *event.Input, ns store.Namespace) {
	in.EntityType, in.EntityPath = event.EntityGroup, ns.FullPath
	if ns.Kind == store.KindProject {
		in.EntityType = event.EntityProject
	}
	if ns.ID > 0 {
		id := ns.ID
		in.EntityID = &id
	}
}

// UserCreated is the event of a user created by a.
func UserCreated(a Author, u store.User) event.Input {
	in := a.input(TypeUserCreated)
	userEntity(&in, u)
	in.TargetID, in.TargetType, in.TargetDetails = idJSON(u.ID), targetUser, u.Username
	in.Details = details("custom_message", "User "+u.Username+" created", "admin", u.Admin)
	return in
}

// TokenCreated is the event of token t of user owner created by a: the token's id, name,
// scopes and expiry, never its value.
func TokenCreated(a Author, owner store.User, t store.Token) event.Input {
	return tokenEvent(a, owner, t, TypeTokenCreated, "Created")
}

// TokenRevoked is the event of token t of user owner revoked by a.
func TokenRevoked(a Author, owner store.User, t store.Token) event.Input {
	return tokenEvent(a, owner, t, TypeTokenRevoked, "Revoked")
}

func tokenEvent(a Author, owner store.User, t store.Token, eventType, verb string) event.Input {
	in := a.input(eventType)
	userEntity(&in, owner)
	kind := "personal access token"
	if t.Impersonation {
		kind = "impersonation token"
	}
	in.TargetID, in.TargetType, in.TargetDetails = idJSON(t.ID), targetToken, t.Name
	expires := any(nil)
	if !t.ExpiresAt.IsZero() {
		expires = t.ExpiresAt.UTC().Format(time.DateOnly)
	}
	scopes := t.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	in.Details = details("custom_message", verb+" "+kind+" with id "+strconv.FormatInt(t.ID, 10),
		"scopes", scopes, "expires_at", expires, "impersonation", t.Impersonation)
	return in
}

// roles are GitLab's names of the access levels, as its member events write them.
var roles = map[int]string{10: "Guest", 20: "Reporter", 30: "Developer", 40: "Maintainer", 50: "Owner"}

func role(level int) string {
	if r, ok := roles[level]; ok {
		return r
	}
	return "Custom (" + strconv.Itoa(level) + ")"
}

func expiry(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.DateOnly)
}

func memberEvent(a Author, eventType string, ns store.Namespace, u store.User) event.Input {
	in := a.input(eventType)
	namespaceEntity(&in, ns)
	in.TargetID, in.TargetType, in.TargetDetails = idJSON(u.ID), targetUser, u.Username
	return in
}

// MemberCreated is the event of user u made a member of ns as m says, by a.
func MemberCreated(a Author, ns store.Namespace, u store.User, m store.Member) event.Input {
	in := memberEvent(a, TypeMemberCreated, ns, u)
	in.Details = details("add", "user_access", "as", role(m.AccessLevel), "member_id", u.ID,
		"expiry_to", expiry(m.ExpiresAt))
	return in
}

// MemberUpdated is the event of u's membership of ns changed from old to m, by a.
func MemberUpdated(a Author, ns store.Namespace, u store.User, old, m store.Member) event.Input {
	in := memberEvent(a, TypeMemberUpdated, ns, u)
	in.Details = details("change", "access_level", "from", role(old.AccessLevel), "to", role(m.AccessLevel),
		"expiry_from", expiry(old.ExpiresAt), "expiry_to", expiry(m.ExpiresAt), "member_id", u.ID)
	return in
}

// MemberDestroyed is the event of u's membership old of ns removed, by a.
func MemberDestroyed(a Author, ns store.Namespace, u store.User, old store.Member) event.Input {
	in := memberEvent(a, TypeMemberDestroyed, ns, u)
	in.Details = details("remove", "user_access", "as", role(old.AccessLevel), "member_id", u.ID)
	return in
}

// NamespaceCreated is the event of group or project ns created by a (group_created,
// project_created).
func NamespaceCreated(a Author, ns store.Namespace) event.Input {
	t, target, msg := TypeGroupCreated, targetGroup, "Added group"
	if ns.Kind == store.KindProject {
		t, target, msg = TypeProjectCreated, targetProject, "Added project"
	}
	in := a.input(t)
	namespaceEntity(&in, ns)
	if ns.ID > 0 {
		in.TargetID = idJSON(ns.ID)
	}
	in.TargetType, in.TargetDetails = target, ns.FullPath
	in.Details = details("custom_message", msg)
	return in
}

// GroupTokenCreated is the event of group access token t, of bot user bot, created for group
// ns by a, with GitLab's message: its id, scopes and access level, never its value.
func GroupTokenCreated(a Author, ns store.Namespace, bot store.User, t store.Token) event.Input {
	scopes, _ := json.Marshal(nonNil(t.Scopes))
	in := groupTokenEvent(a, TypeGroupTokenCreated, ns, t)
	in.Details = details("custom_message", "Created group access token with token_id: "+strconv.FormatInt(t.ID, 10)+
		" with scopes: "+string(scopes)+" and "+role(t.AccessLevel)+" access level.",
		"scopes", nonNil(t.Scopes), "access_level", t.AccessLevel, "expires_at", expiry(t.ExpiresAt),
		"bot_user_id", bot.ID, "bot_username", bot.Username)
	return in
}

// GroupTokenDeleted is the event of group access token t of group ns revoked by a (GitLab
// records a revoked group access token as deleted).
func GroupTokenDeleted(a Author, ns store.Namespace, bot store.User, t store.Token) event.Input {
	in := groupTokenEvent(a, TypeGroupTokenDeleted, ns, t)
	in.Details = details("custom_message", "Revoked group access token with token_id: "+strconv.FormatInt(t.ID, 10),
		"bot_user_id", bot.ID, "bot_username", bot.Username)
	return in
}

func groupTokenEvent(a Author, eventType string, ns store.Namespace, t store.Token) event.Input {
	in := a.input(eventType)
	namespaceEntity(&in, ns)
	in.TargetID, in.TargetType, in.TargetDetails = idJSON(t.ID), targetToken, t.Name
	return in
}

func nonNil(scopes []string) []string {
	if scopes == nil {
		return []string{}
	}
	return scopes
}

// RepublishedTo is what one destination got of a re-publish.
type RepublishedTo struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	Delivered int    `json:"delivered"`
	Failed    int    `json:"failed"`
}

// TrailRepublished is the event of a re-publish by a of the events the log lost: ids (all of
// them, as ranges: "5-9,12") and what each destination got. An instance event.
func TrailRepublished(a Author, count int, ids string, to []RepublishedTo) event.Input {
	in := a.input(TypeTrailRepublished)
	in.EntityType = event.EntityInstance
	if to == nil {
		to = []RepublishedTo{}
	}
	in.Details = details("custom_message", "Re-published "+strconv.Itoa(count)+" event(s) the log lost from the store's copies",
		"republished", count, "ids", ids, "destinations", to)
	return in
}
