package adminaudit_test

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/internal/adminaudit"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/store"
)

// TestEventsAreValidAndHoldNoSecret: every event built here passes the validation a producer's
// event passes (so Record never refuses one), has GitLab's type for its change, and holds
// nothing of a token but its id, name, scopes and expiry.
func TestEventsAreValidAndHoldNoSecret(t *testing.T) {
	t.Parallel()
	cat, err := event.Load("")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	a := adminaudit.AuthorOf(store.User{ID: 1, Name: "Administrator", Email: "admin@example.com"}, "192.0.2.1")
	alice := store.User{ID: 2, Username: "alice", Name: "Alice"}
	hash := []byte("0123456789abcdef0123456789abcdef")
	tok := store.Token{ID: 7, UserID: 2, Name: "ci", Hash: hash, Scopes: []string{"api"}, ExpiresAt: now.AddDate(0, 1, 0)}
	group := store.Namespace{Key: 3, Kind: store.KindGroup, ID: 101, FullPath: "acme"}
	pathOnly := store.Namespace{Key: 4, Kind: store.KindGroup, FullPath: "acme/sub"} // GitLab's id not known
	project := store.Namespace{Key: 5, Kind: store.KindProject, ID: store.LocalID(5), FullPath: "acme/app"}
	bot := store.User{ID: store.LocalIDBase + 1, Username: "group_101_bot_0a1b", Bot: true}
	groupTok := store.Token{ID: 8, UserID: bot.ID, Name: "producer", Hash: hash, Scopes: []string{"ingest"}, NamespaceKey: 3, AccessLevel: 40}
	m := store.Member{NamespaceKey: 3, UserID: 2, AccessLevel: 30}
	m2 := store.Member{NamespaceKey: 3, UserID: 2, AccessLevel: 40}
	for _, c := range []struct {
		in   event.Input
		want string
	}{
		{adminaudit.UserCreated(a, alice), "user_created"},
		{adminaudit.TokenCreated(a, alice, tok), "personal_access_token_created"},
		{adminaudit.TokenRevoked(a, alice, tok), "personal_access_token_revoked"},
		{adminaudit.MemberCreated(a, group, alice, m), "member_created"},
		{adminaudit.MemberUpdated(a, pathOnly, alice, m, m2), "member_updated"},
		{adminaudit.MemberDestroyed(a, project, alice, m2), "member_destroyed"},
		{adminaudit.NamespaceCreated(a, group), "group_created"},
		{adminaudit.NamespaceCreated(a, pathOnly), "group_created"},
		{adminaudit.NamespaceCreated(a, project), "project_created"},
		{adminaudit.GroupTokenCreated(a, group, bot, groupTok), "group_access_token_created"},
		{adminaudit.GroupTokenDeleted(a, pathOnly, bot, groupTok), "group_access_token_deleted"},
	} {
		in := c.in
		if in.EventType != c.want {
			t.Errorf("event type %s, want %s", in.EventType, c.want)
		}
		if _, errs := event.Normalize(&in, cat, now); len(errs) > 0 {
			t.Errorf("%s: invalid: %v", c.want, errs)
		}
		b, _ := json.Marshal(c.in)
		for _, secret := range []string{string(hash), hex.EncodeToString(hash)} {
			if strings.Contains(string(b), secret) {
				t.Errorf("%s holds the token's hash: %s", c.want, b)
			}
		}
		if c.in.AuthorID != 1 || c.in.IPAddress != "192.0.2.1" {
			t.Errorf("%s: author %d from %q", c.want, c.in.AuthorID, c.in.IPAddress)
		}
	}
}
